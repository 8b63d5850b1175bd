#!/usr/bin/env node
// The web page's scripts, from the npm packages pinned in package.json: copies the browser build
// of @magenta/music (which carries TensorFlow.js as mm.tf) into js/dist/, with the versions, so
// `python -m helpers.export --format web` can put them beside index.html. Run by
// scripts/install_node.sh after `npm ci`; nothing is fetched at run time.
'use strict';

const fs = require('fs');
const path = require('path');

const here = __dirname;
const dist = path.join(here, 'dist');
const sources = {
  'magentamusic.js': path.join(here, 'node_modules', '@magenta', 'music', 'dist', 'magentamusic.js'),
};
fs.mkdirSync(dist, {recursive: true});
for (const [name, source] of Object.entries(sources)) {
  fs.copyFileSync(source, path.join(dist, name));
}
const versions = {
  '@magenta/music': require('@magenta/music/package.json').version,
};
fs.writeFileSync(path.join(dist, 'versions.json'), JSON.stringify(versions, null, 2) + '\n');
console.log(`js/dist: ${Object.keys(sources).join(', ')} (${JSON.stringify(versions)})`);
