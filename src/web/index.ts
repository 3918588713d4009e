export { registerWebUi, UI_DIR } from './static.ts';
