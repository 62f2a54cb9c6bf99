package spatialindex

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Agg is one aggregated output: SQL over the row alias g (as package
// aggexp renders it) and its alias.
type Agg struct {
	SQL, Alias string
}

// Query describes a spatial-index tile statement.
type Query struct {
	Kind Kind
	// From is what the rows come from: a quoted table name, or a
	// parenthesized query.
	From string
	// Column is the cell column's name (unquoted).
	Column string
	// Text: the cells are hex text (H3 as CARTO stores it), else bigint.
	Text bool
	// Aggs are the aggregated outputs.
	Aggs []Agg
	// Filter is an extra condition over g ("" for none).
	Filter string
	// ArgsBefore is the number of arguments bound before the tile's.
	ArgsBefore int
	// Limit caps the cells of a tile (0: none).
	Limit int
}

// CellAlias is the output column of the parent cell id.
const CellAlias = "__cell"

// Build returns the tile statement. It takes four arguments after
// ArgsBefore (see Args): the parent masks and the id range of the data
// cells under the tile cell.
func Build(q Query) string {
	n := q.ArgsBefore
	ph := func(i int) string { return "$" + strconv.Itoa(n+i) }
	col := "g." + pgx.Identifier{q.Column}.Sanitize()
	cell := col
	if q.Text {
		cell = "('x' || lpad(" + col + ", 16, '0'))::bit(64)::int8"
	}
	var b strings.Builder
	b.WriteString("SELECT (" + cell + " & " + ph(1) + "::int8) | " + ph(2) + "::int8 AS " + CellAlias)
	for _, a := range q.Aggs {
		b.WriteString(", " + a.SQL + " AS " + pgx.Identifier{a.Alias}.Sanitize())
	}
	b.WriteString("\nFROM " + q.From + " g\nWHERE " + col + " BETWEEN " + ph(3) + " AND " + ph(4))
	if q.Filter != "" {
		b.WriteString(" AND (" + q.Filter + ")")
	}
	b.WriteString("\nGROUP BY 1 ORDER BY 1")
	if q.Limit > 0 {
		b.WriteString(" LIMIT " + strconv.Itoa(q.Limit))
	}
	return b.String()
}

// Args returns the four tile arguments of Build for tile cell t, when the
// data cells are at resolution dataRes and the tile's cells at res
// (Res(t) ≤ res ≤ dataRes).
func (q Query) Args(t uint64, res, dataRes int) []any {
	and, or := q.Kind.ParentMasks(res)
	lo, hi := q.Kind.ChildRange(t, dataRes)
	if q.Text {
		return []any{int64(and), int64(or), Hex(lo), Hex(hi)}
	}
	return []any{int64(and), int64(or), int64(lo), int64(hi)}
}
