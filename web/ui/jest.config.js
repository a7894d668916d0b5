// Jest runs the unit tests of the UI's pure functions (time, URLs, series
// alignment) in Node, compiling TypeScript with swc as the webpack build does.
const { swcOptions } = require('./webpack.config.js');

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testMatch: ['**/*.test.ts', '**/*.test.tsx'],
  transform: {
    '^.+\\.(t|j)sx?$': ['@swc/jest', { ...swcOptions, module: { type: 'commonjs' } }],
  },
};
