package widget

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/spatialindex"
)

// Feature selection and picking on spatial-index sources: featureIds are
// cell ids (what CARTO's clients have of a picked H3 or quadbin cell),
// each naming the rows of that cell or, for a cell coarser than the
// source's, of its descendants.
//
// CARTO's client sends nothing index-specific for them: getFeatures and
// featureIds take whatever ids the app passes (typed as geometry hashes),
// with the source's spatialDataType and spatialDataColumn. Its own way of
// restricting widgets to picked cells is a spatialFilter {indexes, type}
// (scope.go); featureIds here mean the same.

// pickedCell is one featureIds entry on a spatial-index source: the id as
// the client wrote it (given back as mvt.FeatureIDProp) and the cell.
type pickedCell struct {
	ID   string
	Cell uint64
}

// parseCell reads a cell id of kind k: hex (tile addresses, H3's usual
// spelling), or, when decimal is set, a decimal integer (h3int; quadbin
// ids as JavaScript prints a BigInt). No valid cell id is both: every
// cell is above 2^58, longer in decimal than 16 digits.
func parseCell(k spatialindex.Kind, id string, decimal bool) (uint64, error) {
	c, err := k.Parse(id)
	if err == nil || !decimal {
		return c, err
	}
	n, derr := strconv.ParseUint(id, 10, 64)
	if derr != nil {
		return 0, err
	}
	if err := k.Check(n); err != nil {
		return 0, err
	}
	return n, nil
}

// selectCells reads featureIds on a spatial-index source: cells of its
// kind at its resolution or coarser. Repeated cells are kept once.
func (b *builder) selectCells(ids []string) error {
	ix := b.src.Index
	seen := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		c, err := parseCell(ix.Kind, id, true)
		if err != nil {
			return invalid("params.featureIds: %q is not a %s cell id (hex or decimal): %w", id, ix.Kind, err)
		}
		if r := ix.Kind.Res(c); ix.DataRes >= 0 && r > ix.DataRes {
			return invalid("params.featureIds: %s cell %q is at resolution %d, finer than the source's cells (resolution %d)",
				ix.Kind, id, r, ix.DataRes)
		}
		if !seen[c] {
			seen[c] = true
			b.cells = append(b.cells, pickedCell{ID: id, Cell: c})
			b.featureIDs = append(b.featureIDs, id)
		}
	}
	return nil
}

// cellCond keeps the rows in the selected cells (or their descendants),
// as a picked-cells spatial filter does.
func (b *builder) cellCond() (string, error) {
	ix := b.src.Index
	c, err := b.src.column(ix.Column)
	if err != nil {
		return "", err
	}
	cells := make([]uint64, len(b.cells))
	for i, pc := range b.cells {
		cells[i] = pc.Cell
	}
	return b.cellSpatial(c, SpatialFilter{Column: c.Name, Cells: cells, CellKind: ix.Kind})
}

// cellJoin joins the rows to the picked cells that hold them, as
// __pick(lo, hi, id, n): each cell's id range at the source's resolution,
// the id as sent and its position in featureIds.
func (b *builder) cellJoin() (join, cell string, err error) {
	ix := b.src.Index
	c, err := b.src.column(ix.Column)
	if err != nil {
		return "", "", err
	}
	los, his := make([]int64, len(b.cells)), make([]int64, len(b.cells))
	for i, pc := range b.cells {
		lo, hi := pc.Cell, pc.Cell
		if ix.DataRes >= 0 {
			lo, hi = ix.Kind.ChildRange(pc.Cell, ix.DataRes)
		}
		los[i], his[i] = int64(lo), int64(hi)
	}
	cell = cellInt8(c, ix.Text)
	join = " JOIN unnest(" + b.bind(los) + "::int8[], " + b.bind(his) + "::int8[], " + b.bind(b.featureIDs) +
		"::text[]) WITH ORDINALITY AS __pick(lo, hi, id, n) ON " + cell + " BETWEEN __pick.lo AND __pick.hi"
	return join, cell, nil
}

// cellInt8 is cell column c as int8 (hex text read as the tiles read it).
func cellInt8(c catalog.Column, text bool) string {
	if text {
		return "('x' || lpad(" + ref(c) + ", 16, '0'))::bit(64)::int8"
	}
	return ref(c) + "::int8"
}

// pickCells: the rows in the picked cells, in the order of featureIds,
// each with the picked cell's id as mvt.FeatureIDProp (a row of a cell
// picked twice over, as itself and within a parent, comes once for each).
func (b *builder) pickCells(cols []catalog.Column, limit, offset int64) (*Plan, error) {
	join, cell, err := b.cellJoin()
	if err != nil {
		return nil, err
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	sel, keys := pickColumns("__pick.id", cols)
	order := "__pick.n, " + cell
	if b.src.RowIDs {
		order += ", g.ctid"
	}
	q := "SELECT " + sel + ", count(*) OVER () AS __total FROM " + b.src.from() + join + w +
		" ORDER BY " + order + " LIMIT " + b.bind(limit) + " OFFSET " + b.bind(offset)
	return pickPlan(b.stmt(q), keys), nil
}

// pickCellAggregates: one row per picked cell holding rows, in the order
// of featureIds, with the aggregate expressions exp (aggregationExp, as
// the source's tiles were asked with) over the cell's rows: what the
// tile's cell of that id holds, within the request's filters.
func (b *builder) pickCellAggregates(exp string, lim Limits) (*Plan, error) {
	items, err := b.parseExp(exp)
	if err != nil {
		return nil, err
	}
	join, _, err := b.cellJoin()
	if err != nil {
		return nil, err
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	keys := []string{mvt.FeatureIDProp}
	sel := []string{"__pick.id AS " + mvt.FeatureIDProp}
	for _, it := range items {
		if it.Agg.Alias == mvt.FeatureIDProp || strings.HasPrefix(it.Agg.Alias, "__") {
			return nil, invalid("params.aggregationExp: alias %q is reserved", it.Agg.Alias)
		}
		sel = append(sel, it.Agg.SQL+" AS "+pgx.Identifier{it.Agg.Alias}.Sanitize())
		keys = append(keys, it.Agg.Alias)
	}
	q := "SELECT " + strings.Join(sel, ", ") + ", count(*) OVER () AS __total FROM " + b.src.from() + join + w +
		" GROUP BY __pick.n, __pick.id ORDER BY __pick.n LIMIT " + b.bind(int64(min(lim.MaxRows, MaxFeatureIDs)))
	return pickPlan(b.stmt(q), keys), nil
}
