// table.jsx: the console's plain tables.

// Table is a table of rows (arrays of text or elements) under heads.
export function Table({heads, rows, id}) {
  return (
    <table id={id}>
      <thead><tr>{heads.map((h, i) => <th key={i}>{h}</th>)}</tr></thead>
      <tbody>{rows.map((row, i) => <tr key={i}>{row.map((v, j) => <td key={j}>{v ?? ''}</td>)}</tr>)}</tbody>
    </table>
  );
}
