// jsdom lacks a few browser APIs that @grafana/ui's components use.
require('@testing-library/jest-dom');

const { TextEncoder, TextDecoder } = require('util');
Object.assign(global, { TextEncoder, TextDecoder });

if (!window.matchMedia) {
  Object.defineProperty(window, 'matchMedia', {
    writable: true,
    value: (query) => ({
      matches: false,
      media: query,
      onchange: null,
      addListener: () => {},
      removeListener: () => {},
      addEventListener: () => {},
      removeEventListener: () => {},
      dispatchEvent: () => false,
    }),
  });
}

class NoopObserver {
  observe() {}
  unobserve() {}
  disconnect() {}
  takeRecords() {
    return [];
  }
}
global.ResizeObserver = global.ResizeObserver || NoopObserver;
global.IntersectionObserver = global.IntersectionObserver || NoopObserver;

// i18next (inside @grafana/ui) advertises itself on every test file.
const consoleInfo = console.info;
console.info = (...args) => {
  if (String(args[0]).includes('i18next')) {
    return;
  }
  consoleInfo(...args);
};
