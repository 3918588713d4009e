import type { Kysely } from 'kysely';
import type { Bus } from '../cluster/index.ts';
import { PortcullisError } from '../errors.ts';
import type { Database } from '../store/index.ts';

const SETTING_KEY = 'proxy.url';

export interface ProxyTargetUrl {
  readonly href: string;
  /** scheme://host:port, the upstream pool's key. */
  readonly origin: string;
  /** Path prefix of the target without a trailing slash ('' for none). */
  readonly basePath: string;
}

export function parseTargetUrl(value: string): ProxyTargetUrl {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PortcullisError(400, 'invalid_proxy_url', 'The proxy URL is not a valid absolute URL.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PortcullisError(400, 'invalid_proxy_url', 'The proxy URL must use http or https.');
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new PortcullisError(400, 'invalid_proxy_url', 'The proxy URL must not carry credentials, a query or a fragment.');
  }
  const basePath = url.pathname.replace(/\/+$/, '');
  return { href: url.origin + basePath, origin: url.origin, basePath };
}

/**
 * The proxy's target URL: set at run time by an admin and persisted in the store; the
 * configuration only gives the value used until an admin first sets one. Other nodes
 * learn of a change through the bus.
 */
export class ProxyTarget {
  readonly #db: Kysely<Database>;
  readonly #bus: Bus;
  readonly #initial: string | null;
  #current: ProxyTargetUrl | null = null;
  readonly #unsubscribe: () => void;

  constructor(options: { db: Kysely<Database>; bus: Bus; initial: string | null }) {
    this.#db = options.db;
    this.#bus = options.bus;
    this.#initial = options.initial;
    this.#unsubscribe = this.#bus.subscribe((message) => {
      if (message.type === 'settings-changed' && message.key === SETTING_KEY) void this.load().catch(() => {});
    });
  }

  get current(): ProxyTargetUrl | null {
    return this.#current;
  }

  async load(): Promise<void> {
    const row = await this.#db.selectFrom('settings').select('value').where('key', '=', SETTING_KEY).executeTakeFirst();
    const value = row ? (JSON.parse(row.value) as { url: string | null }).url : this.#initial;
    this.#current = value === null ? null : parseTargetUrl(value);
  }

  async set(value: string | null): Promise<ProxyTargetUrl | null> {
    const parsed = value === null ? null : parseTargetUrl(value);
    const json = JSON.stringify({ url: parsed?.href ?? null });
    await this.#db
      .insertInto('settings')
      .values({ key: SETTING_KEY, value: json })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: json }))
      .execute();
    this.#current = parsed;
    await this.#bus.publish({ type: 'settings-changed', key: SETTING_KEY });
    return parsed;
  }

  close(): void {
    this.#unsubscribe();
  }
}
