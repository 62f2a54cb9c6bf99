// purge.jsx: purging the edge caches across the cluster, by tag, URL or
// path prefix.
import {useState} from 'preact/hooks';
import {admin} from './call.js';

const words = (s) => s.split(/\s+/).filter(Boolean);

export function Purge() {
  const [msg, setMsg] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const f = e.currentTarget.elements;
    const tags = words(f['purge-tags'].value);
    const urls = words(f['purge-urls'].value);
    const prefix = f['purge-prefix'].value.trim();
    if (!tags.length && !urls.length && !prefix) {
      setMsg('Name tags, URLs or a prefix to purge.');
      return;
    }
    try {
      const v = await admin('/api/admin/purge', {method: 'POST', body: {tags, urls, prefix, soft: f['purge-soft'].checked}});
      const what = [...(v.tags || []), ...(v.urls || []), ...(v.prefix ? [v.prefix + '*'] : [])];
      setMsg(`Purge of ${what.join(' ')} published (message ${v.message_id}).`);
    } catch (err) {
      setMsg('Purge failed: ' + err.message);
    }
  };
  return (
    <section class="card">
      <h2>Purge across the cluster</h2>
      <form class="row" id="purge-form" onSubmit={submit}>
        <label>Tags (space-separated: src:&lt;conn&gt;/&lt;schema.table&gt;, conn:&lt;conn&gt;, map:&lt;id&gt;)
          <input type="text" id="purge-tags" /></label>
        <label>URLs (space-separated: https://host/path?query, or /path?query on every host)
          <input type="text" id="purge-urls" /></label>
        <label>Path prefix (/api/v3/maps/&lt;conn&gt;/, or https://host/prefix)
          <input type="text" id="purge-prefix" /></label>
        <label class="check"><input type="checkbox" id="purge-soft" /> soft (serve stale while refetching)</label>
        <button class="primary" type="submit">Purge</button>
      </form>
      <p id="purge-msg" class="muted">{msg}</p>
    </section>
  );
}
