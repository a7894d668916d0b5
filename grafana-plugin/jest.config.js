// Jest runs the editors' tests in jsdom, compiling TypeScript with swc as
// the webpack build does.
const { swcOptions } = require('./webpack.config.js');

module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testMatch: ['**/*.test.ts', '**/*.test.tsx'],
  setupFilesAfterEnv: ['<rootDir>/jest.setup.js'],
  transform: {
    '^.+\\.(t|j)sx?$|^.+\\.m?js$': ['@swc/jest', { ...swcOptions, module: { type: 'commonjs' } }],
  },
  // Several of @grafana/ui's dependencies ship only ES modules: swc compiles
  // node_modules too (cached after the first run).
  transformIgnorePatterns: [],
  moduleNameMapper: {
    '\\.(css|scss|sass)$': '<rootDir>/jest.style-mock.js',
    '^react-inlinesvg$': '<rootDir>/jest.inlinesvg-mock.js',
  },
};
