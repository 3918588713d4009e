export { guardedLookup, isPrivateAddress, PrivateAddressError } from './address-guard.ts';
