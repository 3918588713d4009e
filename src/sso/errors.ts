import { PortcullisError } from '../errors.ts';

/**
 * Catalogue of SSO failures. Messages are shown to the person signing in (on the login
 * page), so they are short, single-line and never carry a token, code or secret.
 */
export const SsoErrors = {
  providerNotFound: (id: string) => new PortcullisError(404, 'sso_provider_not_found', `No single sign-on provider "${id.slice(0, 60)}".`),
  loginExpired: () =>
    new PortcullisError(400, 'sso_login_expired', 'The sign-in was not started here or took too long; please try again.'),
  stateMismatch: () => new PortcullisError(400, 'sso_state_mismatch', 'The sign-in response does not match the sign-in that was started; please try again.'),
  providerError: (error: string, description?: string) =>
    new PortcullisError(error === 'access_denied' ? 403 : 400, 'sso_provider_error', `The provider refused the sign-in: ${[error, description].filter(Boolean).join(' - ')}`),
  providerUnavailable: (cause?: unknown) => new PortcullisError(502, 'sso_provider_unavailable', 'The identity provider cannot be reached right now.', { cause }),
  exchangeFailed: (detail: string, cause?: unknown) => new PortcullisError(502, 'sso_exchange_failed', `The provider did not complete the sign-in: ${detail}`, { cause }),
  idTokenInvalid: (detail: string, cause?: unknown) => new PortcullisError(400, 'sso_id_token_invalid', `The provider's ID token is not valid: ${detail}`, { cause }),
  noSubject: () => new PortcullisError(400, 'sso_no_subject', 'The provider did not say who you are (no subject claim).'),
  noEmail: () => new PortcullisError(400, 'sso_no_email', 'The provider did not share an email address.'),
  domainRefused: () => new PortcullisError(403, 'sso_domain_refused', 'Your email domain is not allowed to sign in here.'),
  signUpDisabled: () => new PortcullisError(403, 'sso_signup_disabled', 'You have no account here and sign-up is disabled.'),
  roleRefused: () => new PortcullisError(403, 'sso_role_refused', 'Your roles at the provider do not allow access here.'),
  emailTaken: () => new PortcullisError(409, 'sso_email_taken', 'Another account already uses your email address.'),
  userDisabled: () => new PortcullisError(403, 'sso_user_disabled', 'Your account is disabled.'),
  notSsoSession: () => new PortcullisError(404, 'not_sso_session', 'This session was not created by single sign-on.'),
};

/** The longest message put in a login-page redirect. */
export const MAX_LOGIN_MESSAGE = 200;

/** One line, printable, capped: safe to put in a redirect and show on the login page. */
export function loginMessage(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').replace(/\s+/g, ' ').trim();
  return line.length > MAX_LOGIN_MESSAGE ? line.slice(0, MAX_LOGIN_MESSAGE - 1) + '…' : line;
}
