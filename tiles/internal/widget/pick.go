package widget

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
)

// Feature selection and picking (CARTO_API.md §4.1, §4.2 pick): tiles
// asked for mvt.FeatureIDProp carry each feature's id, a hash of its
// geometry (mvt.FeatureIDSQL); featureIds name features by those ids, and
// the statements here match them by computing the same hash.
//
// On a spatial-index source a feature is a cell, and its id is the cell
// id deck.gl's H3TileLayer and QuadbinTileLayer give a picked object (its
// id: H3 hex, quadbin bigint; hex or decimal here). A picked cell may be
// coarser than the source's cells (tiles below the data resolution show
// parents): it then names the rows of its descendants, as a picked-cells
// spatial filter does (pick_index.go).

// MaxFeatureIDs bounds featureIds (the client's own limit).
const MaxFeatureIDs = 1000

// DefaultPickLimit is the pick model's page size when none is given.
const DefaultPickLimit = 1000

// selectFeatures reads params.featureIds (with params.geometryType, as
// the client sends them for every model but pick) into the builder.
func (b *builder) selectFeatures(model string, params json.RawMessage) error {
	var sel struct {
		FeatureIDs   []string `json:"featureIds"`
		GeometryType string   `json:"geometryType"`
	}
	if err := json.Unmarshal(params, &sel); err != nil {
		return invalid("params: %v", err)
	}
	if len(sel.FeatureIDs) == 0 {
		return nil
	}
	if len(sel.FeatureIDs) > MaxFeatureIDs {
		return invalid("params.featureIds: %d ids, at most %d", len(sel.FeatureIDs), MaxFeatureIDs)
	}
	if model != "pick" && sel.GeometryType == "" {
		return invalid("params.geometryType is required with featureIds (points, lines or polygons)")
	}
	if b.src.Index != nil {
		return b.selectCells(sel.FeatureIDs)
	}
	for _, id := range sel.FeatureIDs {
		if !validFeatureID(id) {
			return invalid("params.featureIds: %q is not a feature id (the %s of a tile feature)", id, mvt.FeatureIDProp)
		}
	}
	b.featureIDs = sel.FeatureIDs
	return nil
}

// validFeatureID: 16 lower-case hex digits (mvt.FeatureIDSQL).
func validFeatureID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// featureCond is the condition keeping the selected features.
func (b *builder) featureCond() (string, error) {
	if b.src.Index != nil {
		return b.cellCond()
	}
	if len(b.src.Geoms) == 0 {
		return "", invalid("featureIds: the source has no geometry column")
	}
	return mvt.FeatureIDSQL("g", b.src.Geoms[0].Name) + " = ANY(" + b.bind(b.featureIDs) + "::text[])", nil
}

// pick: the rows of the features named by featureIds, with the columns
// asked for (all but geometries when none), each with its
// _carto_feature_id → {rows: [{_carto_feature_id, col…}], metadata:
// {total}}. A feature id may name several rows (equal geometries): all
// are returned.
func (b *builder) pick(params json.RawMessage, lim Limits) (*Plan, error) {
	var p struct {
		Columns  []string `json:"columns"`
		DataType string   `json:"dataType"`
		// AggregationExp (spatial-index sources; not sent by CARTO's
		// client): one row per picked cell, aggregated as the tiles do.
		AggregationExp string   `json:"aggregationExp"`
		Limit          *float64 `json:"limit"`
		Offset         *float64 `json:"offset"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	switch p.DataType {
	case "", "points", "lines", "polygons":
	default:
		return nil, invalid("params.dataType %q: want points, lines or polygons", p.DataType)
	}
	if len(b.featureIDs) == 0 {
		return nil, invalid("params.featureIds: the pick model needs the ids of the features to return")
	}
	if b.src.Index != nil && p.AggregationExp != "" {
		return b.pickCellAggregates(p.AggregationExp, lim)
	}
	var cols []catalog.Column
	for _, n := range p.Columns {
		if n == mvt.FeatureIDProp || slices.ContainsFunc(cols, func(c catalog.Column) bool { return c.Name == n }) {
			continue
		}
		c, err := b.src.column(n)
		if err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if len(p.Columns) == 0 {
		for _, c := range b.src.Columns {
			if c.Type != catalog.TypeGeometry {
				cols = append(cols, c)
			}
		}
	}
	limit, err := whole("limit", p.Limit, 0, int64(lim.MaxRows), DefaultPickLimit)
	if err != nil {
		return nil, err
	}
	offset, err := whole("offset", p.Offset, 0, 1e12, 0)
	if err != nil {
		return nil, err
	}
	if b.src.Index != nil {
		return b.pickCells(cols, limit, offset)
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	id := mvt.FeatureIDSQL("g", b.src.Geoms[0].Name)
	sel, keys := pickColumns(id, cols)
	order := "1"
	if b.src.RowIDs {
		order += ", g.ctid"
	}
	q := "SELECT " + sel + ", count(*) OVER () AS __total FROM " + b.src.from() + w +
		" ORDER BY " + order + " LIMIT " + b.bind(limit) + " OFFSET " + b.bind(offset)
	return pickPlan(b.stmt(q), keys), nil
}

// pickColumns is the select list of a pick statement: id as
// mvt.FeatureIDProp, then cols; keys are the answer rows' keys.
func pickColumns(id string, cols []catalog.Column) (sel string, keys []string) {
	keys = []string{mvt.FeatureIDProp}
	list := []string{id + " AS " + mvt.FeatureIDProp}
	for _, c := range cols {
		list = append(list, value(c)+" AS "+pgx.Identifier{c.Name}.Sanitize())
		keys = append(keys, c.Name)
	}
	return strings.Join(list, ", "), keys
}

// pickPlan shapes a pick statement whose columns are keys then __total
// into {rows, metadata: {total}}.
func pickPlan(st Statement, keys []string) *Plan {
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		rows := make([]Row, len(res[0].Rows))
		var total any = int64(0)
		for i, vals := range res[0].Rows {
			rows[i] = Row{Keys: keys, Vals: vals[:len(keys)]}
			total = vals[len(keys)]
		}
		return body{Rows: rows, Metadata: map[string]any{"total": total}}, nil
	}}
}
