// params.js: the map's SQL parameters. A parameter has a name, a type
// and a value; a SQL query layer uses it as :name (or @name), and its
// dataset's queryParameters carry the values of the parameters its query
// names, as {name: value}: what the maps, SQL and widget APIs bind
// (CARTO's named queryParameters), and what fetchMap sends for a
// published map. The definitions live in keplerMapConfig.config.sqlParameters.

export const PARAM_TYPES = [
  {type: 'number', label: 'Number'},
  {type: 'text', label: 'Text'},
  {type: 'date', label: 'Date'},
];

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

// validName says what is wrong with a parameter name, or '' when nothing.
export function validName(name, params) {
  if (!NAME.test(name)) return 'A name is a letter or _ then letters, digits or _ (at most 63).';
  if (params.some((p) => p.name === name)) return `There is a parameter "${name}" already.`;
  return '';
}

// namesIn returns the parameter names query uses (:name or @name, not a
// ::cast, outside string literals and comments).
export function namesIn(query) {
  const bare = query
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/--[^\n]*/g, '')
    .replace(/\/\*[\s\S]*?\*\//g, '');
  const out = new Set();
  for (const m of bare.matchAll(/(^|[^:\w])[:@]([A-Za-z_][A-Za-z0-9_]*)/g)) out.add(m[2]);
  return out;
}

// valueOf is a parameter's value as the APIs bind it.
export function valueOf(p) {
  if (p.type === 'number') {
    const n = Number(p.value);
    return Number.isFinite(n) ? n : 0;
  }
  return String(p.value ?? '');
}

// bindParams sets the queryParameters of every query dataset from params
// (the values of the parameters its query names), and removes them from
// datasets that name none. It changes datasets in place and returns the
// names a query uses that no parameter defines.
export function bindParams(datasets, params) {
  const byName = Object.fromEntries((params || []).map((p) => [p.name, p]));
  const undefinedNames = new Set();
  for (const d of datasets) {
    if (d.type !== 'query') continue;
    const values = {};
    for (const name of namesIn(d.source)) {
      if (byName[name]) values[name] = valueOf(byName[name]);
      else undefinedNames.add(name);
    }
    if (Object.keys(values).length) d.queryParameters = values;
    else delete d.queryParameters;
  }
  return [...undefinedNames];
}

// paramValues is {name: value} of params, for a query being written.
export const paramValues = (params) => Object.fromEntries((params || []).map((p) => [p.name, valueOf(p)]));
