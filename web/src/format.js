// format.js: times, sizes, counts and names as the web apps show them.

const dateFmt = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'short'});
export const formatTime = (t) => (t ? dateFmt.format(t instanceof Date ? t : new Date(t)) : '');

const relFmt = new Intl.RelativeTimeFormat(undefined, {numeric: 'auto'});
// fromNow says when t is, relative to now ("in 3 days", "5 minutes ago").
export function fromNow(t, now = Date.now()) {
  const s = Math.round((new Date(t).getTime() - now) / 1000);
  const units = [['year', 31536000], ['month', 2592000], ['day', 86400], ['hour', 3600], ['minute', 60]];
  for (const [unit, secs] of units) {
    if (Math.abs(s) >= secs) return relFmt.format(Math.trunc(s / secs), unit);
  }
  return relFmt.format(s, 'second');
}

// duration says how long s seconds are, roughly (40 s, 3 min, 1.5 h, 2.0 d).
export function duration(s) {
  if (s < 60) return Math.round(s) + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 86400) return (s / 3600).toFixed(1) + ' h';
  return (s / 86400).toFixed(1) + ' d';
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export const formatCount = (n) => (Number.isFinite(n) ? n.toLocaleString() : '');

// tableName turns a file name into a table name the importer accepts.
export function tableName(filename) {
  let n = filename.replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60);
  if (!/^[a-z_]/.test(n)) n = 't_' + n;
  return n === 't_' ? '' : n;
}
