// Builds the UI into ../dist, which the strata binary embeds (package web):
//   dist/assets/app.<hash>.js   the whole application, styles included
//   dist/index.html             the page, naming that file
//   dist/SOURCES.sha256         the sources the build was made from
// The build is deterministic (same sources and lock file, same bytes), so
// tools/check-build.js can rebuild and compare, and web.TestDistUpToDate can
// tell from SOURCES.sha256 whether the committed build is older than its sources.
const fs = require('fs');
const path = require('path');

const { sources, manifest } = require('./tools/sources.js');

// swc options shared with jest.config.js (as the Grafana plugin's).
const swcOptions = {
  jsc: {
    parser: { syntax: 'typescript', tsx: true },
    target: 'es2020',
    transform: { react: { runtime: 'automatic' } },
  },
};

// Writes index.html naming the hashed bundle, and the source manifest. A
// few lines instead of html-webpack-plugin keep the dependency set small.
class WritePage {
  constructor(dist) {
    this.dist = dist;
  }
  apply(compiler) {
    compiler.hooks.afterEmit.tap('WritePage', (compilation) => {
      const js = Object.keys(compilation.assets).filter((n) => /^app\.[0-9a-f]+\.js$/.test(n));
      if (js.length !== 1) {
        throw new Error(`expected one app.<hash>.js, got ${js.join(', ')}`);
      }
      const html = fs
        .readFileSync(path.join(__dirname, 'src/index.html'), 'utf8')
        .replace('%APP_JS%', `./assets/${js[0]}`);
      fs.writeFileSync(path.join(this.dist, 'index.html'), html);
      fs.writeFileSync(path.join(this.dist, 'SOURCES.sha256'), manifest(sources(__dirname)));
    });
  }
}

module.exports = (env, argv) => {
  const dist = (env && env.dist) || path.resolve(__dirname, '..', 'dist');
  return {
    mode: argv.mode || 'production',
    context: __dirname,
    entry: { app: './src/index.tsx' },
    devtool: argv.mode === 'development' ? 'eval-source-map' : false,
    output: {
      path: path.join(dist, 'assets'),
      filename: '[name].[contenthash:16].js',
      publicPath: './assets/',
      clean: true,
      hashFunction: 'sha256',
    },
    resolve: { extensions: ['.ts', '.tsx', '.js', '.mjs'] },
    module: {
      rules: [
        {
          test: /\.[tj]sx?$/,
          exclude: /node_modules/,
          use: { loader: 'swc-loader', options: swcOptions },
        },
        // Styles are bundled as text and added to the page at start:
        // one file to load, and no css-loader chain.
        { test: /\.css$/, type: 'asset/source' },
      ],
    },
    optimization: { splitChunks: false, runtimeChunk: false },
    plugins: [new WritePage(dist)],
    performance: { hints: false },
  };
};

module.exports.swcOptions = swcOptions;
