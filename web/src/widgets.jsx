// widgets.jsx: the Builder's widgets, computed by the model API through
// @carto/api-client's widget sources (the same calls a customer's app
// makes). Each widget filters its dataset (filters keyed by column, owned
// by the widget), which filters the map and every other widget of that
// dataset; a widget never filters itself (filterOwner).
import {useEffect, useState} from 'preact/hooks';
import {addFilter, removeFilter, FilterType} from '@carto/api-client';
import {formatValue} from './mapview.jsx';
import {useOnChange} from './hooks.js';

export const WIDGET_TYPES = [
  {type: 'formula', label: 'Formula', numeric: true},
  {type: 'category', label: 'Category'},
  {type: 'histogram', label: 'Histogram', numeric: true},
  {type: 'range', label: 'Range', numeric: true},
  {type: 'timeseries', label: 'Time series', time: true},
  {type: 'table', label: 'Table'},
];

const fmt = (v) => (typeof v === 'number' ? new Intl.NumberFormat(undefined, {maximumFractionDigits: 2, notation: Math.abs(v) >= 1e6 ? 'compact' : 'standard'}).format(v) : formatValue(v));

// setFilter returns filters with the widget's selection on column
// (values null clears it).
export function setFilter(filters, widget, type, values) {
  const f = structuredClone(filters || {});
  removeFilter(f, {column: widget.column, owner: widget.id});
  if (values && values.length > 0) addFilter(f, {column: widget.column, type, values, owner: widget.id});
  return f;
}

// selectionOf is the widget's current selection in filters, or null.
export function selectionOf(filters, widget) {
  const byType = filters?.[widget.column];
  if (!byType) return null;
  for (const v of Object.values(byType)) {
    if (v?.owner === widget.id) return v.values;
  }
  return null;
}

function useWidgetData(source, widget, filters, spatialFilter, load) {
  const [state, setState] = useState({loading: true});
  const key = JSON.stringify([widget, filters, spatialFilter]);
  useEffect(() => {
    if (!source) {
      setState({error: 'The dataset of this widget is not loaded.'});
      return undefined;
    }
    const ac = new AbortController();
    setState((s) => ({...s, loading: true}));
    load({filters: filters || {}, filterOwner: widget.id, spatialFilter, signal: ac.signal})
      .then((data) => !ac.signal.aborted && setState({data}))
      .catch((err) => !ac.signal.aborted && setState({error: err.message || String(err)}));
    return () => ac.abort();
  }, [source, key]);
  return state;
}

function Formula({source, widget, filters, spatialFilter}) {
  const op = widget.operation || 'count';
  const s = useWidgetData(source, widget, filters, spatialFilter, (o) => source.getFormula({...o, column: op === 'count' ? '*' : widget.column, operation: op}));
  return <Body s={s}>{s.data && <div class="formula" data-testid="formula-value">{fmt(s.data.value)}</div>}</Body>;
}

function Category({source, widget, filters, spatialFilter, onFilter}) {
  const op = widget.operation || 'count';
  const s = useWidgetData(source, widget, filters, spatialFilter, (o) => source.getCategories({...o, column: widget.column, operation: op, operationColumn: widget.operationColumn || widget.column}));
  const selected = selectionOf(filters, widget) || [];
  const rows = (s.data || []).slice().sort((a, b) => b.value - a.value).slice(0, widget.limit || 8);
  const max = Math.max(1, ...rows.map((r) => r.value));
  const toggle = (name) => {
    const next = selected.includes(name) ? selected.filter((v) => v !== name) : [...selected, name];
    onFilter(setFilter(filters, widget, FilterType.IN, next.length ? next : null));
  };
  return (
    <Body s={s}>
      <ul class="categories">
        {rows.map((r) => (
          <li key={r.name} class={selected.length && !selected.includes(r.name) ? 'dim' : ''}>
            <button type="button" class="cat" data-category={String(r.name)} aria-pressed={selected.includes(r.name)} onClick={() => toggle(r.name)}>
              <span class="cat-name">{formatValue(r.name)}</span><span class="cat-value">{fmt(r.value)}</span>
              <span class="cat-bar" style={{width: `${(100 * r.value) / max}%`}} />
            </button>
          </li>
        ))}
      </ul>
      {selected.length > 0 && <button type="button" class="link" onClick={() => onFilter(setFilter(filters, widget, FilterType.IN, null))}>Clear ({selected.length} selected)</button>}
    </Body>
  );
}

function Histogram({source, widget, filters, spatialFilter, onFilter}) {
  const bins = widget.bins || 10;
  const [range, setRange] = useState(null);
  useEffect(() => {
    if (!source) return;
    // The ticks come from the unfiltered range, so the bars stay put while filtering.
    source.getRange({column: widget.column, filters: {}, filterOwner: widget.id}).then(setRange).catch(() => setRange({min: 0, max: 1}));
  }, [source, widget.column]);
  const ticks = range ? Array.from({length: bins - 1}, (_, i) => range.min + ((range.max - range.min) * (i + 1)) / bins) : null;
  const s = useWidgetData(range && source, widget, filters, spatialFilter, (o) => source.getHistogram({...o, column: widget.column, ticks, operation: 'count'}));
  const sel = selectionOf(filters, widget);
  const counts = s.data || [];
  const max = Math.max(1, ...counts);
  const edges = range ? [range.min, ...ticks, range.max] : [];
  const pick = (i) => {
    const lo = edges[i], hi = edges[i + 1];
    const same = sel && sel[0]?.[0] === lo && sel[0]?.[1] === hi;
    onFilter(setFilter(filters, widget, FilterType.BETWEEN, same ? null : [[lo, hi]]));
  };
  return (
    <Body s={range ? s : {loading: true}}>
      <div class="histogram" data-testid="histogram">
        {counts.map((c, i) => {
          const active = sel && sel[0]?.[0] === edges[i];
          return <button type="button" key={i} class={'hbar' + (sel && !active ? ' dim' : '')} title={`${fmt(edges[i])} – ${fmt(edges[i + 1])}: ${fmt(c)}`} data-count={c} onClick={() => pick(i)}>
            <span style={{height: `${(100 * c) / max}%`}} />
          </button>;
        })}
      </div>
      {range && <div class="axis"><span>{fmt(range.min)}</span><span>{fmt(range.max)}</span></div>}
    </Body>
  );
}

function Range({source, widget, filters, spatialFilter, onFilter}) {
  const s = useWidgetData(source, widget, filters, spatialFilter, (o) => source.getRange({...o, column: widget.column}));
  const sel = selectionOf(filters, widget)?.[0];
  const [lo, setLo] = useState(sel ? String(sel[0]) : '');
  const [hi, setHi] = useState(sel ? String(sel[1]) : '');
  useOnChange(JSON.stringify(sel), () => {
    setLo(sel ? String(sel[0]) : '');
    setHi(sel ? String(sel[1]) : '');
  });
  const apply = (e) => {
    e.preventDefault();
    const a = lo === '' ? s.data?.min : Number(lo), b = hi === '' ? s.data?.max : Number(hi);
    onFilter(setFilter(filters, widget, FilterType.BETWEEN, Number.isFinite(a) && Number.isFinite(b) ? [[a, b]] : null));
  };
  return (
    <Body s={s}>
      {s.data && <p class="muted" data-testid="range-span" data-min={s.data.min} data-max={s.data.max}>{fmt(s.data.min)} to {fmt(s.data.max)}</p>}
      <form class="range-form" onSubmit={apply}>
        <input type="number" step="any" placeholder="min" value={lo} onInput={(e) => setLo(e.currentTarget.value)} aria-label="Minimum" />
        <input type="number" step="any" placeholder="max" value={hi} onInput={(e) => setHi(e.currentTarget.value)} aria-label="Maximum" />
        <button type="submit" class="small">Apply</button>
        {sel && <button type="button" class="small" onClick={() => onFilter(setFilter(filters, widget, FilterType.BETWEEN, null))}>Clear</button>}
      </form>
    </Body>
  );
}

function TimeSeries({source, widget, filters, spatialFilter, onFilter}) {
  const s = useWidgetData(source, widget, filters, spatialFilter, (o) => source.getTimeSeries({...o, column: widget.column, stepSize: widget.stepSize || 'year', operation: widget.operation || 'count', operationColumn: widget.operationColumn}));
  const rows = s.data?.rows || [];
  const max = Math.max(1, ...rows.map((r) => r.value));
  const sel = selectionOf(filters, widget)?.[0];
  // A bar's start as epoch milliseconds, what time filters take (the
  // client names bars by an ISO date).
  const ms = (v) => (typeof v === 'number' ? v : Date.parse(v));
  const step = rows.length > 1 ? ms(rows[1].name) - ms(rows[0].name) : 86_400_000;
  const pick = (i) => {
    const from = ms(rows[i].name), to = rows[i + 1] ? ms(rows[i + 1].name) : from + step;
    onFilter(setFilter(filters, widget, FilterType.TIME, sel && sel[0] === from ? null : [[from, to - 1]]));
  };
  return (
    <Body s={s}>
      <div class="histogram timeseries">
        {rows.map((r, i) => <button type="button" key={r.name} class={'hbar' + (sel && sel[0] !== ms(r.name) ? ' dim' : '')} data-count={r.value} data-name={ms(r.name)} title={`${new Date(r.name).toISOString().slice(0, 10)}: ${fmt(r.value)}`} onClick={() => pick(i)}>
          <span style={{height: `${(100 * r.value) / max}%`}} />
        </button>)}
      </div>
      {rows.length > 0 && <div class="axis"><span>{new Date(rows[0].name).toISOString().slice(0, 10)}</span><span>{new Date(rows[rows.length - 1].name).toISOString().slice(0, 10)}</span></div>}
    </Body>
  );
}

function Table({source, widget, filters, spatialFilter}) {
  const columns = widget.columns?.length ? widget.columns : [widget.column];
  const s = useWidgetData(source, widget, filters, spatialFilter, (o) => source.getTable({...o, columns, sortBy: widget.column, sortDirection: 'desc', limit: 10, offset: 0}));
  return (
    <Body s={s}>
      {s.data && <>
        <table class="wtable"><thead><tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
          <tbody>{s.data.rows.map((r, i) => <tr key={i}>{columns.map((c) => <td key={c}>{fmt(r[c] ?? r[c.toLowerCase()])}</td>)}</tr>)}</tbody></table>
        <p class="muted" data-testid="table-total" data-total={s.data.totalCount}>{fmt(s.data.totalCount)} rows</p>
      </>}
    </Body>
  );
}

function Body({s, children}) {
  if (s.error) return <div class="note error" role="alert">{s.error}</div>;
  return <div class={'wbody' + (s.loading ? ' loading' : '')}>{s.data === undefined && s.loading ? <div class="muted">Loading…</div> : children}</div>;
}

const KINDS = {formula: Formula, category: Category, histogram: Histogram, range: Range, timeseries: TimeSeries, table: Table};

// Widget is one widget card; onRemove is set in the editor only.
export function Widget({widget, source, filters, spatialFilter, onFilter, onRemove, datasetLabel}) {
  const Kind = KINDS[widget.type];
  return (
    <section class="widget" data-widget={widget.type} data-widget-id={widget.id}>
      <header>
        <h3>{widget.title || `${widget.column}`}</h3>
        <span class="muted small">{datasetLabel}</span>
        {onRemove && <button type="button" class="icon" title="Remove widget" aria-label={`Remove widget ${widget.title}`} onClick={onRemove}>×</button>}
      </header>
      {Kind ? <Kind widget={widget} source={source} filters={filters} spatialFilter={spatialFilter} onFilter={onFilter} /> : <div class="note error">Unknown widget type {widget.type}</div>}
    </section>
  );
}
