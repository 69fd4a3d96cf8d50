import t from 'tap';
import { parseConfig } from '../../src/config/load';

// Configuration keys are looked up among the schema's own keys (issue 22, item 6 d): a key named
// after an Object property is unknown, and stops the start like any other unknown key.

t.test('constructor, toString and __proto__ are unknown configuration keys', async (t) => {
  const bad: [string, RegExp][] = [
    ['constructor: 1\n', /unknown configuration key "constructor" \(known keys here: http, /],
    ['http:\n  toString: x\n', /unknown configuration key "http\.toString"/],
    ['auth:\n  hasOwnProperty: x\n', /unknown configuration key "auth\.hasOwnProperty"/],
    ['auth:\n  htpasswd:\n    __proto__: {}\n', /unknown configuration key "auth\.htpasswd\.__proto__"/],
  ];
  for (const [yaml, re] of bad) t.throws(() => parseConfig(yaml, {}), re, re.source);
});
