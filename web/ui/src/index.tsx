import { createRoot } from 'react-dom/client';
import uplotCSS from 'uplot/dist/uPlot.min.css';

import { App } from './App';
import { loadTheme } from './settings';
import appCSS from './styles.css';
import { applyTheme } from './theme';

// Styles are bundled as text (see webpack.config.js) and added here, with
// the theme set before the first paint.
const style = document.createElement('style');
style.textContent = uplotCSS + '\n' + appCSS;
document.head.appendChild(style);
applyTheme(loadTheme());

createRoot(document.getElementById('root')!).render(<App />);
