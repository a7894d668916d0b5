// @grafana/ui's icons load SVG files over the network; in jsdom they are
// empty svg elements.
const React = require('react');
module.exports = function InlineSVG(props) {
  return React.createElement('svg', { 'data-src': props.src, className: props.className });
};
module.exports.default = module.exports;
