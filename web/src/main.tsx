import { render } from 'preact';
import { App } from './app.tsx';
import { interceptLinks } from './router.ts';
import './style.css';

const root = document.getElementById('app');
if (root) {
  interceptLinks(document.body);
  render(<App />, root);
}
