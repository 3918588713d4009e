export { openStore, type Store, type StoreOptions, type Dialect } from './open.ts';
export { SecretBox, loadSecretKey } from './secret-box.ts';
export type * from './schema.ts';
