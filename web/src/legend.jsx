// legend.jsx: the map legend, from the scales parseMap computed (the
// domain comes from the tile stats), so it matches the colours drawn.
import {legendOf} from './render.js';

export function Legend({layers, descriptors}) {
  const visible = layers.filter((l) => l.config.isVisible);
  if (visible.length === 0) return null;
  return (
    <div class="legend" data-testid="legend">
      {visible.map((l) => {
        const lg = legendOf(l, descriptors?.[l.id]);
        return (
          <div class="legend-layer" key={l.id}>
            <div class="legend-title">{l.config.label}</div>
            {lg.kind === 'single'
              ? <div class="legend-item"><i style={{background: `rgb(${lg.color.slice(0, 3).join(',')})`}} /> </div>
              : <>
                <div class="muted small">{lg.field}</div>
                {lg.items.map((it, i) => <div class="legend-item" key={i}><i style={{background: it.color}} />{it.label}</div>)}
              </>}
          </div>
        );
      })}
    </div>
  );
}
