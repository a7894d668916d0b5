// Bundles the front end into dist/module.js as an AMD module, the format
// Grafana's plugin loader (SystemJS) expects; react and Grafana's packages
// are external: Grafana provides them at runtime.
const fs = require('fs');
const path = require('path');

const pkg = require('./package.json');

// swc options shared with jest.config.js.
const swcOptions = {
  jsc: {
    parser: { syntax: 'typescript', tsx: true },
    target: 'es2020',
    // The classic runtime uses React.createElement, which the external
    // react provides in every Grafana version.
    transform: { react: { runtime: 'classic' } },
  },
};

// Copies plugin.json (with version and date filled in) and the images to
// dist. A few lines of fs instead of copy-webpack-plugin keep the
// dependency set small.
class CopyPluginFiles {
  apply(compiler) {
    compiler.hooks.afterEmit.tap('CopyPluginFiles', () => {
      const out = compiler.options.output.path;
      const json = fs
        .readFileSync(path.join(__dirname, 'src/plugin.json'), 'utf8')
        .replace('%VERSION%', pkg.version)
        .replace('%TODAY%', new Date().toISOString().slice(0, 10));
      fs.writeFileSync(path.join(out, 'plugin.json'), json);
      fs.cpSync(path.join(__dirname, 'src/img'), path.join(out, 'img'), { recursive: true });
      fs.copyFileSync(path.join(__dirname, 'README.md'), path.join(out, 'README.md'));
    });
  }
}

module.exports = (env, argv) => ({
  mode: argv.mode || 'production',
  context: __dirname,
  entry: { module: './src/module.ts' },
  devtool: argv.mode === 'development' ? 'eval-source-map' : 'source-map',
  output: {
    path: path.resolve(__dirname, 'dist'),
    filename: '[name].js',
    library: { type: 'amd' },
    publicPath: 'public/plugins/strata-tsdb-datasource/',
    uniqueName: 'strata-tsdb-datasource',
    clean: { keep: /^gpx_/ },
  },
  externals: [
    'react',
    'react-dom',
    'rxjs',
    'lodash',
    '@emotion/css',
    '@emotion/react',
    /^@grafana\/data/,
    /^@grafana\/ui/,
    /^@grafana\/runtime/,
    /^@grafana\/schema/,
  ],
  resolve: { extensions: ['.ts', '.tsx', '.js'] },
  module: {
    rules: [
      {
        test: /\.[tj]sx?$/,
        exclude: /node_modules/,
        use: { loader: 'swc-loader', options: swcOptions },
      },
    ],
  },
  plugins: [new CopyPluginFiles()],
  performance: { hints: false },
});

module.exports.swcOptions = swcOptions;
