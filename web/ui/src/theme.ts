import { createContext } from 'react';

import type { Theme } from './settings';

// ThemeContext carries the theme to what draws with its colours (charts).
export const ThemeContext = createContext<Theme>('light');

export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
}
