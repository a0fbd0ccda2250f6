#!/usr/bin/env node
// Regenerates the configuration reference in README.md from the schema (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { configReference } from '../dist/src/config/describe.js';

const start = '<!-- config-reference:start -->';
const end = '<!-- config-reference:end -->';
const readme = readFileSync('README.md', 'utf8');
const a = readme.indexOf(start);
const b = readme.indexOf(end);
if (a < 0 || b < 0) throw new Error('README.md has no config-reference markers');
writeFileSync('README.md', readme.slice(0, a + start.length) + '\n' + configReference() + readme.slice(b));
console.log('README.md configuration reference updated');
