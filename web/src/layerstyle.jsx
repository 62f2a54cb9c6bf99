// layerstyle.jsx: a layer's style panel: colour (single or by column,
// with scale and CARTOColors palette), opacity, stroke, point radius and
// size by value, 3D height, tooltip fields.
import {SEQUENTIAL, QUALITATIVE, colorBy, colorRange, hexToRGB, rgbToHex, isNumeric, palette} from './style.js';

// columnsOf lists a dataset's attribute columns with types from its TileJSON.
export function columnsOf(dataset) {
  const schema = dataset?.data?.schema || [];
  const geo = (dataset?.geoColumn || 'geom').split(':').pop();
  return schema.filter((f) => f.name !== geo && !/^geometry|^geography/i.test(f.type));
}

function Swatches({colors}) {
  return <span class="swatches">{colors.map((c) => <i key={c} style={{background: c}} />)}</span>;
}

export function LayerStyle({layer, dataset, tooltip, onChange, onTooltip}) {
  const cols = columnsOf(dataset);
  if (dataset?.loadError) return <div class="style-panel note error" data-testid="style-panel" data-ready="false">This source cannot be loaded: {dataset.loadError}</div>;
  if (!dataset?.data?.schema) return <div class="style-panel muted" data-testid="style-panel" data-ready="false">Loading the columns…</div>;
  const vc = layer.visualChannels;
  const v = layer.config.visConfig;
  const colorCol = vc.colorField?.name || '';
  const numericColor = vc.colorField && vc.colorField.type !== 'string';
  const set = (fn) => {
    const l = structuredClone(layer);
    fn(l);
    onChange(l);
  };
  const numericCols = cols.filter((c) => isNumeric(c.type));
  const isPoint = (dataset?.data?.tilestats?.layers?.[0]?.geometry || '').includes('Point');
  return (
    <div class="style-panel" data-testid="style-panel" data-ready="true">
      <label>Name
        <input type="text" value={layer.config.label} onInput={(e) => set((l) => { l.config.label = e.currentTarget.value; })} />
      </label>
      <fieldset>
        <legend>Fill colour</legend>
        <label>Colour by
          <select name="color-by" value={colorCol} onChange={(e) => onChange(colorBy(layer, cols.find((c) => c.name === e.currentTarget.value) || null))}>
            <option value="">Single colour</option>
            {cols.map((c) => <option key={c.name} value={c.name}>{c.name} ({isNumeric(c.type) ? 'number' : c.type})</option>)}
          </select>
        </label>
        {!colorCol && <label>Colour <input type="color" name="fill-color" value={rgbToHex(layer.config.color)} onInput={(e) => set((l) => { l.config.color = hexToRGB(e.currentTarget.value); })} /></label>}
        {numericColor && <label>Scale
          <select name="color-scale" value={vc.colorScale} onChange={(e) => set((l) => { l.visualChannels.colorScale = e.currentTarget.value; })}>
            <option value="quantile">Quantile</option><option value="quantize">Equal intervals (quantize)</option>
          </select>
        </label>}
        {colorCol && <label>Palette
          <select name="palette" value={v.colorRange?.name} onChange={(e) => set((l) => { l.config.visConfig.colorRange = colorRange(e.currentTarget.value, numericColor ? (v.colorRange?.colors?.length || 6) : 10, numericColor ? 'sequential' : 'qualitative'); })}>
            {(numericColor ? SEQUENTIAL : QUALITATIVE).map((p) => <option key={p} value={p}>{p}</option>)}
          </select>
          <Swatches colors={v.colorRange?.colors || palette('Sunset', 6)} />
        </label>}
        {numericColor && <label>Steps
          <select name="steps" value={v.colorRange?.colors?.length} onChange={(e) => set((l) => { l.config.visConfig.colorRange = colorRange(v.colorRange.name, Number(e.currentTarget.value), 'sequential'); })}>
            {[3, 4, 5, 6, 7].map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>}
        <label>Opacity <input type="range" name="opacity" min="0" max="1" step="0.05" value={v.opacity} onInput={(e) => set((l) => { l.config.visConfig.opacity = Number(e.currentTarget.value); })} /></label>
      </fieldset>
      <fieldset>
        <legend><label class="check"><input type="checkbox" name="stroked" checked={v.stroked} onChange={(e) => set((l) => { l.config.visConfig.stroked = e.currentTarget.checked; })} /> Stroke</label></legend>
        {v.stroked && <>
          <label>Stroke colour <input type="color" name="stroke-color" value={rgbToHex(v.strokeColor)} onInput={(e) => set((l) => { l.config.visConfig.strokeColor = hexToRGB(e.currentTarget.value); })} /></label>
          <label>Stroke width <input type="range" min="0" max="6" step="0.25" value={v.thickness} onInput={(e) => set((l) => { l.config.visConfig.thickness = Number(e.currentTarget.value); })} /></label>
        </>}
      </fieldset>
      {isPoint && <fieldset>
        <legend>Points</legend>
        <label>Radius <input type="range" min="1" max="30" step="1" value={v.radius} onInput={(e) => set((l) => { l.config.visConfig.radius = Number(e.currentTarget.value); })} /></label>
        <label>Size by
          <select name="size-by" value={vc.radiusField?.name || ''} onChange={(e) => set((l) => {
            const c = numericCols.find((x) => x.name === e.currentTarget.value);
            l.visualChannels.radiusField = c ? {name: c.name, type: 'real'} : null;
            l.visualChannels.radiusScale = 'sqrt';
          })}>
            <option value="">Fixed</option>
            {numericCols.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </label>
      </fieldset>}
      {!isPoint && <fieldset>
        <legend><label class="check"><input type="checkbox" name="enable3d" checked={v.enable3d} onChange={(e) => set((l) => { l.config.visConfig.enable3d = e.currentTarget.checked; })} /> 3D height</label></legend>
        {v.enable3d && <label>Height by
          <select name="height-by" value={vc.heightField?.name || ''} onChange={(e) => set((l) => {
            const c = numericCols.find((x) => x.name === e.currentTarget.value);
            l.visualChannels.heightField = c ? {name: c.name, type: 'real'} : null;
            l.visualChannels.heightScale = 'linear';
          })}>
            <option value="">None</option>
            {numericCols.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </label>}
      </fieldset>}
      <fieldset>
        <legend>Tooltip</legend>
        <div class="checks">
          {cols.map((c) => <label class="check" key={c.name}><input type="checkbox" name="tooltip-field" value={c.name} checked={tooltip.includes(c.name)}
            onChange={(e) => onTooltip(e.currentTarget.checked ? [...tooltip, c.name] : tooltip.filter((x) => x !== c.name))} /> {c.name}</label>)}
        </div>
      </fieldset>
    </div>
  );
}
