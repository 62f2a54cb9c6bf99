// paramspanel.jsx: the editor's SQL parameters: define them (name, type,
// value), use them as :name in a SQL query layer, and change their values,
// which redraws the layers whose queries use them (and is what a published
// map sends).
import {useState} from 'preact/hooks';
import {PARAM_TYPES, bindParams, namesIn, validName} from './params.js';

const inputType = {number: 'number', text: 'text', date: 'date'};

export function ParametersPanel({map, update}) {
  const params = map.keplerMapConfig.config.sqlParameters || [];
  const [name, setName] = useState('');
  const [type, setType] = useState('number');
  const [value, setValue] = useState('');
  const [error, setError] = useState('');
  const usedBy = (n) => map.datasets.filter((d) => d.type === 'query' && namesIn(d.source).has(n)).map((d) => d.label || d.id);

  const change = (fn) => update((m) => {
    const ps = m.keplerMapConfig.config.sqlParameters || (m.keplerMapConfig.config.sqlParameters = []);
    fn(ps);
    bindParams(m.datasets, ps);
  });
  const add = (e) => {
    e.preventDefault();
    const n = name.trim();
    const problem = validName(n, params) || (value === '' ? 'Give the parameter a value.' : '');
    setError(problem);
    if (problem) return;
    change((ps) => ps.push({id: 'p-' + Math.random().toString(36).slice(2, 8), name: n, type, value}));
    setName('');
    setValue('');
  };
  const remove = (p) => {
    const users = usedBy(p.name);
    if (users.length) {
      setError(`:${p.name} is used by ${users.join(', ')}; change those queries first.`);
      return;
    }
    setError('');
    change((ps) => ps.splice(ps.findIndex((x) => x.id === p.id), 1));
  };

  return (
    <section class="panel" data-testid="parameters">
      <h2>SQL parameters</h2>
      <p class="muted">Write <code>:name</code> in a SQL query layer; its value here is bound when the query runs, in this map and once published.</p>
      {error && <div class="note error" role="alert" data-testid="param-error">{error}</div>}
      <ul class="plain params">
        {params.map((p) => (
          <li key={p.id} data-param={p.name}>
            <label>:{p.name} <span class="muted small">{p.type}{usedBy(p.name).length ? ` · ${usedBy(p.name).join(', ')}` : ' · unused'}</span>
              <input type={inputType[p.type]} name={`param-${p.name}`} value={p.value}
                onChange={(e) => { const v = e.currentTarget.value; change((ps) => { ps.find((x) => x.id === p.id).value = v; }); }} />
            </label>
            <button type="button" class="icon" title="Remove parameter" aria-label={`Remove :${p.name}`} onClick={() => remove(p)}>×</button>
          </li>
        ))}
      </ul>
      <form class="stack" onSubmit={add} aria-label="Add parameter">
        <label>Name
          <input type="text" name="param-name" value={name} placeholder="min_population" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>Type
          <select name="param-type" value={type} onChange={(e) => { setType(e.currentTarget.value); setValue(''); }}>
            {PARAM_TYPES.map((t) => <option key={t.type} value={t.type}>{t.label}</option>)}
          </select>
        </label>
        <label>Value
          <input type={inputType[type]} name="param-value" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary small">Add parameter</button>
      </form>
    </section>
  );
}
