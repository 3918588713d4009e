/** Who is signed in, and which optional parts of the gateway exist. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Principal } from './api.ts';

/** Optional capabilities: each is hidden when its endpoint answers 404 (not built or not configured). */
export interface Features {
  devices: boolean;
  connections: boolean;
  sessions: boolean;
  adminGroups: boolean;
  adminDevices: boolean;
  adminConnections: boolean;
  adminProxy: boolean;
}

export interface SessionState {
  me: Principal;
  features: Features;
  isAdmin: boolean;
  /** True in the gateway's unsecured development mode (no real sign-in). */
  anonymous: boolean;
  signOut: () => Promise<void>;
  /** Forget the principal locally (after "sign out everywhere"). */
  signedOut: () => void;
  /** Re-check which features exist (after an admin changes configuration). */
  refreshFeatures: () => void;
}

export const SessionContext = createContext<SessionState | null>(null);

/** The signed-in session; only used below the signed-in shell. */
export function useSession(): SessionState {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in page');
  return s;
}

export const ANONYMOUS_NAME = 'anonymousUser';
