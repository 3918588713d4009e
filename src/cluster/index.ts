export { LocalBus, type Bus, type BusMessage } from './bus.ts';
export { RedisBus } from './redis-bus.ts';
