// Bundles the screenshot page with everything in it (no externals): react,
// @grafana/ui and the plugin's QueryEditor.
const path = require('path');
const { swcOptions } = require('../../webpack.config.js');

module.exports = {
  mode: 'development',
  devtool: false,
  context: __dirname,
  entry: { page: './page.tsx' },
  output: { path: path.join(__dirname, 'build'), filename: '[name].js' },
  resolve: { extensions: ['.ts', '.tsx', '.js', '.mjs'] },
  module: {
    rules: [
      { test: /\.[tj]sx?$/, exclude: /node_modules/, use: { loader: 'swc-loader', options: swcOptions } },
      { test: /\.m?js$/, resolve: { fullySpecified: false } },
    ],
  },
  performance: { hints: false },
  stats: 'errors-warnings',
};
