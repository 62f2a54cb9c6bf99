package widget

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/tiles/internal/aggexp"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

// Widget limits (CARTO_API.md §11).
const (
	// ScatterLimit is the most points a scatterplot returns.
	ScatterLimit = 500
	// MaxTicks bounds a histogram's ticks.
	MaxTicks = 10_000
	// DefaultTableLimit is the table model's page size when none is given.
	DefaultTableLimit = 10
)

// Build plans model over src within scope. params is the model's params
// object (CARTO_API.md §4.2).
func Build(model string, params json.RawMessage, src *Source, scope Scope, lim Limits) (*Plan, error) {
	lim.setDefaults()
	params = bytes.TrimSpace(params)
	if len(params) == 0 || params[0] != '{' {
		return nil, invalid("params: want a JSON object")
	}
	scope.covers = lim.Covers
	b := newBuilder(src, &scope)
	if err := b.selectFeatures(model, params); err != nil {
		return nil, err
	}
	switch model {
	case "formula":
		return b.formula(params)
	case "category":
		return b.category(params, lim)
	case "histogram":
		return b.histogram(params)
	case "range":
		return b.rangeModel(params)
	case "scatterplot":
		return b.scatter(params)
	case "timeseries":
		return b.timeseries(params, lim)
	case "table":
		return b.table(params, lim)
	case "aggregations":
		return b.aggregations(params)
	case "pick":
		return b.pick(params, lim)
	}
	return nil, clienterr.Errorf(ErrUnknownModel, " %q: want one of %s", model, strings.Join(Models, ", "))
}

// decode reads params into v; unknown fields (client bookkeeping such as
// joinOperation) are ignored.
func decode(params json.RawMessage, v any) error {
	if err := json.Unmarshal(params, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid("params.%s: want a %s", te.Field, te.Type)
		}
		return invalid("params: %v", err)
	}
	return nil
}

// Operations (AggregationTypes).
const (
	opCount  = "count"
	opAvg    = "avg"
	opMin    = "min"
	opMax    = "max"
	opSum    = "sum"
	opCustom = "custom"
)

// aggregate renders operation op over column name ("" or "*": rows) or
// the custom expression exp, as an aggregate over g.
func (b *builder) aggregate(op, name, exp string) (string, error) {
	switch strings.ToLower(op) {
	case "", opCount:
		if name == "" || name == "*" {
			return "count(*)", nil
		}
		c, err := b.src.column(name)
		if err != nil {
			return "", err
		}
		return "count(" + ref(c) + ")", nil
	case opSum, opAvg:
		c, err := b.src.column(name)
		if err != nil {
			return "", err
		}
		if !isNumeric(c) {
			return "", invalid("%s of column %q, which is %s: want a number", op, c.Name, c.Type)
		}
		return strings.ToLower(op) + "(" + ref(c) + ")::float8", nil
	case opMin, opMax:
		c, err := b.src.column(name)
		if err != nil {
			return "", err
		}
		switch {
		case isNumeric(c):
			return strings.ToLower(op) + "(" + ref(c) + ")::float8", nil
		case c.Type == catalog.TypeTimestamp, c.Type == catalog.TypeString:
			return strings.ToLower(op) + "(" + value(c) + ")", nil
		}
		return "", invalid("%s of column %q, which is %s: want a number, text or timestamp", op, c.Name, c.Type)
	case opCustom:
		if strings.TrimSpace(exp) == "" {
			return "", invalid("operationExp is required with operation custom")
		}
		items, err := b.parseExp(exp + " AS value")
		if err != nil {
			return "", err
		}
		if len(items) != 1 {
			return "", invalid("operationExp: want one aggregate expression without alias")
		}
		return items[0].Agg.SQL, nil
	}
	return "", invalid("operation %q: want count, avg, min, max, sum or custom", op)
}

// parseExp parses aggregate expressions with their aliases, reporting an
// unknown column as a ColumnError.
func (b *builder) parseExp(exp string) ([]aggexp.Item, error) {
	var missing string
	items, err := aggexp.Parse(exp, func(name string) (catalog.Column, bool) {
		c, ok := b.src.Column(name)
		if !ok && missing == "" {
			missing = name
		}
		return c, ok
	})
	if err != nil {
		if errors.Is(err, catalog.ErrUnknownColumn) && missing != "" {
			return nil, &ColumnError{Name: missing}
		}
		return nil, err
	}
	return items, nil
}

// required looks up a model's mandatory column parameter.
func (b *builder) required(param, name string) (catalog.Column, error) {
	if name == "" {
		return catalog.Column{}, invalid("params.%s is required", param)
	}
	return b.src.column(name)
}

// whole checks an optional whole-number parameter within [lo, hi]; def
// when absent.
func whole(param string, v *float64, lo, hi, def int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if f := *v; f < float64(lo) || f > float64(hi) || f != math.Trunc(f) {
		return 0, invalid("%s %v: want a whole number from %d to %d", param, f, lo, hi)
	}
	return int64(*v), nil
}

// and appends cond to a WHERE clause.
func and(where, cond string) string {
	if where == "" {
		return " WHERE " + cond
	}
	return where + " AND " + cond
}

// formula: one aggregate over every row in scope → {rows:[{value}]}.
func (b *builder) formula(params json.RawMessage) (*Plan, error) {
	var p struct {
		Column       string `json:"column"`
		Operation    string `json:"operation"`
		OperationExp string `json:"operationExp"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	agg, err := b.aggregate(p.Operation, p.Column, p.OperationExp)
	if err != nil {
		return nil, err
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	st := b.stmt("SELECT " + agg + " AS value FROM " + b.src.from() + w)
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		row, err := one(res[0])
		if err != nil {
			return nil, err
		}
		return body{Rows: []Row{{Keys: []string{"value"}, Vals: row}}}, nil
	}}, nil
}

// Category orders (CategoryOrderBy).
var categoryOrders = map[string]string{
	"":                  "value DESC NULLS LAST, name ASC NULLS LAST",
	"frequency_desc":    "value DESC NULLS LAST, name ASC NULLS LAST",
	"frequency_asc":     "value ASC NULLS LAST, name ASC NULLS LAST",
	"alphabetical_asc":  "name ASC NULLS LAST, value DESC NULLS LAST",
	"alphabetical_desc": "name DESC NULLS LAST, value DESC NULLS LAST",
}

// category: the aggregate per value of column → {rows:[{name, value}]}.
// With othersThreshold N only the first N categories are returned, and
// metadata.others is the aggregate over the rows of all the others (0 or
// null when there are none, as the aggregate gives over no rows).
func (b *builder) category(params json.RawMessage, lim Limits) (*Plan, error) {
	var p struct {
		Column          string   `json:"column"`
		Operation       string   `json:"operation"`
		OperationColumn string   `json:"operationColumn"`
		OperationExp    string   `json:"operationExp"`
		OthersThreshold *float64 `json:"othersThreshold"`
		OrderBy         string   `json:"orderBy"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	c, err := b.required("column", p.Column)
	if err != nil {
		return nil, err
	}
	if c.Type == catalog.TypeGeometry {
		return nil, invalid("column %q is a geometry: categories need values", c.Name)
	}
	order, ok := categoryOrders[p.OrderBy]
	if !ok {
		return nil, invalid("orderBy %q: want frequency_desc, frequency_asc, alphabetical_asc or alphabetical_desc", p.OrderBy)
	}
	opCol := p.OperationColumn
	if opCol == "" {
		opCol = p.Column
	}
	var agg string
	if strings.EqualFold(p.Operation, opCount) || p.Operation == "" {
		agg = "count(*)" // rows per category, the category's NULLs included
	} else if agg, err = b.aggregate(p.Operation, opCol, p.OperationExp); err != nil {
		return nil, err
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	name := value(c)
	cte := "WITH c AS (SELECT " + name + " AS name, " + agg + " AS value FROM " + b.src.from() + w + " GROUP BY 1)"
	threshold, err := whole("othersThreshold", p.OthersThreshold, 0, int64(lim.MaxRows), 0)
	if err != nil {
		return nil, err
	}
	var st Statement
	if threshold == 0 {
		st = b.stmt(cte + " SELECT name, value FROM c ORDER BY " + order + " LIMIT " + b.bind(int64(lim.MaxRows+1)))
	} else {
		k := b.bind(threshold)
		others := "CASE WHEN " + name + " IS NULL THEN NOT EXISTS (SELECT 1 FROM r WHERE rn <= " + k + " AND name IS NULL)" +
			" ELSE " + name + " <> ALL (ARRAY(SELECT name FROM r WHERE rn <= " + k + " AND name IS NOT NULL)) END"
		st = b.stmt(cte + ", r AS (SELECT name, value, row_number() OVER (ORDER BY " + order + ") AS rn FROM c)" +
			" SELECT name, value, rn FROM r WHERE rn <= " + k +
			" UNION ALL SELECT NULL, (SELECT " + agg + " FROM " + b.src.from() + and(w, others) + "), 0" +
			" ORDER BY 3")
	}
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		out := body{Rows: []Row{}}
		var othersVal any
		for _, vals := range res[0].Rows {
			if threshold > 0 && isZero(vals[2]) {
				othersVal = vals[1]
				continue
			}
			out.Rows = append(out.Rows.([]Row), Row{Keys: []string{"name", "value"}, Vals: vals[:2]})
		}
		if n := len(out.Rows.([]Row)); n > lim.MaxRows {
			return nil, clienterr.Errorf(ErrTooManyRows, ": more than %d categories: add othersThreshold or filters", lim.MaxRows)
		}
		if threshold > 0 {
			out.Metadata = map[string]any{"others": Plain(othersVal)}
		}
		return out, nil
	}}, nil
}

func isZero(v any) bool {
	switch x := v.(type) {
	case int64:
		return x == 0
	case int32:
		return x == 0
	case int:
		return x == 0
	}
	return false
}

// histogram: the aggregate per bin of column, bins cut at ticks: bin 0 is
// (-∞, t0), bin i is [t(i-1), t(i)), the last is [t(n-1), +∞); NULLs and
// empty bins are left out → {rows:[{tick, value}]}.
func (b *builder) histogram(params json.RawMessage) (*Plan, error) {
	var p struct {
		Column       string    `json:"column"`
		Operation    string    `json:"operation"`
		OperationExp string    `json:"operationExp"`
		Ticks        []float64 `json:"ticks"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if len(p.Ticks) == 0 || len(p.Ticks) > MaxTicks {
		return nil, invalid("params.ticks: want 1 to %d numbers", MaxTicks)
	}
	for i, t := range p.Ticks {
		if math.IsNaN(t) || math.IsInf(t, 0) || i > 0 && t < p.Ticks[i-1] {
			return nil, invalid("params.ticks: want finite numbers in ascending order")
		}
	}
	c, err := b.required("column", p.Column)
	if err != nil {
		return nil, err
	}
	num, err := number(c)
	if err != nil {
		return nil, err
	}
	agg := "count(*)"
	if !(p.Operation == "" || strings.EqualFold(p.Operation, opCount)) {
		if agg, err = b.aggregate(p.Operation, p.Column, p.OperationExp); err != nil {
			return nil, err
		}
	}
	w, err := b.where(ref(c) + " IS NOT NULL")
	if err != nil {
		return nil, err
	}
	st := b.stmt("SELECT width_bucket(" + num + ", " + b.bind(p.Ticks) + "::float8[]) AS tick, " + agg + " AS value FROM " +
		b.src.from() + w + " GROUP BY 1 ORDER BY 1")
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		return body{Rows: rows(res[0])}, nil
	}}, nil
}

// rangeModel: min and max of column → {rows:[{min, max}]} (numbers, or
// ISO strings for timestamps).
func (b *builder) rangeModel(params json.RawMessage) (*Plan, error) {
	var p struct {
		Column string `json:"column"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if _, err := b.required("column", p.Column); err != nil {
		return nil, err
	}
	mn, err := b.aggregate(opMin, p.Column, "")
	if err != nil {
		return nil, err
	}
	mx, _ := b.aggregate(opMax, p.Column, "")
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	st := b.stmt("SELECT " + mn + " AS min, " + mx + " AS max FROM " + b.src.from() + w)
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		row, err := one(res[0])
		if err != nil {
			return nil, err
		}
		return body{Rows: []Row{{Keys: []string{"min", "max"}, Vals: row}}}, nil
	}}, nil
}

// scatter: up to ScatterLimit (x, y) pairs of rows where both are set →
// {rows:[{x, y}]}.
func (b *builder) scatter(params json.RawMessage) (*Plan, error) {
	var p struct {
		X     string `json:"xAxisColumn"`
		Y     string `json:"yAxisColumn"`
		Limit int64  `json:"limit"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if p.X == "" || p.Y == "" {
		return nil, invalid("params.xAxisColumn and params.yAxisColumn are required")
	}
	cx, err := b.src.column(p.X)
	if err != nil {
		return nil, err
	}
	cy, err := b.src.column(p.Y)
	if err != nil {
		return nil, err
	}
	x, err := number(cx)
	if err != nil {
		return nil, err
	}
	y, err := number(cy)
	if err != nil {
		return nil, err
	}
	if p.Limit <= 0 || p.Limit > ScatterLimit {
		p.Limit = ScatterLimit
	}
	w, err := b.where(ref(cx)+" IS NOT NULL", ref(cy)+" IS NOT NULL")
	if err != nil {
		return nil, err
	}
	st := b.stmt("SELECT " + x + " AS x, " + y + " AS y FROM " + b.src.from() + w + " LIMIT " + b.bind(p.Limit))
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		return body{Rows: rows(res[0])}, nil
	}}, nil
}

// Step sizes (GroupDateType) and their date_bin unit.
var stepUnits = map[string]string{
	"week": "weeks", "day": "days", "hour": "hours", "minute": "mins", "second": "secs",
}

// timeseries: the aggregate per time step of column (UTC; weeks start on
// Monday; stepMultiplier steps counted from 1970-01-01, or the Monday
// 1970-01-05) → {rows:[{name, value}], metadata:{categories:[]}}, name
// being the step's start as an ISO string. With splitByCategory the rows
// also carry category, one series per category: splitByCategoryValues,
// else the splitByCategoryLimit most frequent (all without a limit);
// metadata.categories lists them, most frequent first.
func (b *builder) timeseries(params json.RawMessage, lim Limits) (*Plan, error) {
	var p struct {
		Column                string   `json:"column"`
		StepSize              string   `json:"stepSize"`
		StepMultiplier        *float64 `json:"stepMultiplier"`
		Operation             string   `json:"operation"`
		OperationColumn       string   `json:"operationColumn"`
		OperationExp          string   `json:"operationExp"`
		SplitByCategory       string   `json:"splitByCategory"`
		SplitByCategoryLimit  *float64 `json:"splitByCategoryLimit"`
		SplitByCategoryValues []string `json:"splitByCategoryValues"`
		// EpochUnit (Meridian's) reads a number column as a time since
		// 1970-01-01 UTC: "seconds" or "milliseconds".
		EpochUnit string `json:"epochUnit"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	c, err := b.required("column", p.Column)
	if err != nil {
		return nil, err
	}
	var epochDiv string
	switch strings.ToLower(p.EpochUnit) {
	case "":
	case "s", "seconds":
		epochDiv = ""
	case "ms", "milliseconds":
		epochDiv = " / 1000"
	default:
		return nil, invalid("epochUnit %q: want seconds or milliseconds", p.EpochUnit)
	}
	number := c.Type == catalog.TypeNumber || c.Type == catalog.TypeBigint
	switch {
	case p.EpochUnit != "" && !number:
		return nil, invalid("epochUnit applies to a number column; column %q is %s", c.Name, c.Type)
	case p.EpochUnit == "" && number:
		return nil, invalid("column %q is a number: timeseries need a date or timestamp column; for a time since 1970 "+
			"add \"epochUnit\": \"seconds\" or \"milliseconds\" to the params, or select to_timestamp(%s) in a query source", c.Name, c.Name)
	case p.EpochUnit == "" && c.Type != catalog.TypeTimestamp:
		return nil, invalid("column %q is %s: timeseries need a date or timestamp column", c.Name, c.Type)
	}
	mult, err := whole("stepMultiplier", p.StepMultiplier, 1, 1_000_000, 1)
	if err != nil {
		return nil, err
	}
	// ts is the column as a UTC timestamp without time zone.
	ts := ref(c)
	pg := strings.ToLower(c.PGType)
	switch {
	case p.EpochUnit != "":
		ts = "(to_timestamp(" + ts + "::float8" + epochDiv + ") AT TIME ZONE 'UTC')"
	case strings.Contains(pg, "with time zone") && !strings.Contains(pg, "without"):
		ts = "(" + ts + " AT TIME ZONE 'UTC')"
	case strings.HasPrefix(pg, "date"):
		ts = ts + "::timestamp"
	}
	step := strings.ToLower(p.StepSize)
	if _, ok := stepUnits[step]; !ok && step != "year" && step != "month" {
		return nil, invalid("stepSize %q: want year, month, week, day, hour, minute or second", p.StepSize)
	}
	// bucket renders the start of a row's step, binding into b.
	bucket := func(b *builder) string {
		switch step {
		case "year":
			m := b.bind(mult)
			return "make_timestamp((floor(extract(year FROM " + ts + ") / " + m + "::int8) * " + m + "::int8)::int, 1, 1, 0, 0, 0)"
		case "month":
			m := b.bind(mult)
			idx := "(floor((extract(year FROM " + ts + ") * 12 + extract(month FROM " + ts + ") - 1) / " + m + "::int8) * " + m + "::int8)"
			return "make_timestamp(floor(" + idx + " / 12)::int, (" + idx + " % 12 + 1)::int, 1, 0, 0, 0)"
		}
		origin := "1970-01-01"
		if step == "week" {
			origin = "1970-01-05" // a Monday
		}
		return "date_bin(make_interval(" + stepUnits[step] + " => " + b.bind(int32(mult)) + "::int), " + ts + ", " +
			b.bind(origin) + "::timestamp)"
	}
	opCol := p.OperationColumn
	if opCol == "" {
		opCol = p.Column
	}
	agg, err := b.aggregate(p.Operation, opCol, p.OperationExp)
	if err != nil {
		return nil, err
	}
	notNull := ref(c) + " IS NOT NULL"
	if p.SplitByCategory == "" {
		bk := bucket(b)
		w, err := b.where(notNull)
		if err != nil {
			return nil, err
		}
		st := b.stmt("SELECT " + bk + " AS name, " + agg + " AS value FROM " + b.src.from() + w +
			" GROUP BY 1 ORDER BY 1 LIMIT " + b.bind(int64(lim.MaxRows+1)))
		return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
			if len(res[0].Rows) > lim.MaxRows {
				return nil, clienterr.Errorf(ErrTooManyRows, ": more than %d time steps: use a larger stepSize", lim.MaxRows)
			}
			return body{Rows: rows(res[0]), Metadata: map[string]any{"categories": []string{}}}, nil
		}}, nil
	}

	cc, err := b.src.column(p.SplitByCategory)
	if err != nil {
		return nil, err
	}
	if cc.Type == catalog.TypeGeometry {
		return nil, invalid("splitByCategory %q is a geometry column", cc.Name)
	}
	catLimit, err := whole("splitByCategoryLimit", p.SplitByCategoryLimit, 0, int64(lim.MaxRows), 0)
	if err != nil {
		return nil, err
	}
	cat := ref(cc) + "::text"
	// cats renders the CTE of the series' categories, binding into b.
	cats := func(b *builder) (string, error) {
		cond := ref(cc) + " IS NOT NULL"
		if len(p.SplitByCategoryValues) > 0 {
			cond += " AND " + cat + " = ANY(" + b.bind(p.SplitByCategoryValues) + "::text[])"
		}
		w, err := b.where(notNull, cond)
		if err != nil {
			return "", err
		}
		q := "WITH cats AS (SELECT " + cat + " AS category, count(*) AS n FROM " + b.src.from() + w + " GROUP BY 1 ORDER BY 2 DESC, 1"
		if catLimit > 0 {
			q += " LIMIT " + b.bind(catLimit)
		}
		return q + ")", nil
	}
	b1 := newBuilder(b.src, b.scope)
	cte, err := cats(b1)
	if err != nil {
		return nil, err
	}
	st1 := b1.stmt(cte + " SELECT category FROM cats ORDER BY n DESC, category")
	b2 := newBuilder(b.src, b.scope)
	if cte, err = cats(b2); err != nil {
		return nil, err
	}
	bk := bucket(b2)
	w, err := b2.where(notNull)
	if err != nil {
		return nil, err
	}
	st2 := b2.stmt(cte + " SELECT " + bk + " AS name, " + cat + " AS category, " + agg + " AS value FROM " +
		b2.src.from() + " JOIN cats ON cats.category = " + cat + w + " GROUP BY 1, 2 ORDER BY 1, 2 LIMIT " +
		b2.bind(int64(lim.MaxRows+1)))
	return &Plan{Statements: []Statement{st1, st2}, shape: func(res []Result) (any, error) {
		if len(res[1].Rows) > lim.MaxRows {
			return nil, clienterr.Errorf(ErrTooManyRows, ": more than %d time steps: use a larger stepSize or fewer categories", lim.MaxRows)
		}
		names := make([]string, 0, len(res[0].Rows))
		for _, r := range res[0].Rows {
			s, _ := r[0].(string)
			names = append(names, s)
		}
		return body{Rows: rows(res[1]), Metadata: map[string]any{"categories": names}}, nil
	}}, nil
}

// table: a page of rows (the columns under their requested names) and
// metadata.total, the rows in scope → {rows:[…], metadata:{total}}. Pages
// are ordered by sortBy, then by the listed columns (and the row's
// physical id for tables), so paging is stable.
func (b *builder) table(params json.RawMessage, lim Limits) (*Plan, error) {
	var p struct {
		Column        json.RawMessage `json:"column"`
		Columns       json.RawMessage `json:"columns"`
		SortBy        string          `json:"sortBy"`
		SortDirection string          `json:"sortDirection"`
		Limit         *float64        `json:"limit"`
		Offset        *float64        `json:"offset"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	raw := p.Column
	if len(raw) == 0 || string(raw) == "null" {
		raw = p.Columns
	}
	var names []string
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		var s string
		json.Unmarshal(raw, &s)
		names = []string{s}
	default:
		if err := json.Unmarshal(raw, &names); err != nil {
			return nil, invalid("params.column: want a list of column names")
		}
	}
	type outCol struct {
		as  string
		col catalog.Column
	}
	var cols []outCol
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		c, err := b.src.column(n)
		if err != nil {
			return nil, err
		}
		cols = append(cols, outCol{n, c})
	}
	if len(cols) == 0 {
		for _, c := range b.src.Columns {
			if c.Type != catalog.TypeGeometry {
				cols = append(cols, outCol{c.Name, c})
			}
		}
	}
	limit, err := whole("limit", p.Limit, 0, int64(lim.MaxRows), DefaultTableLimit)
	if err != nil {
		return nil, err
	}
	offset, err := whole("offset", p.Offset, 0, 1e12, 0)
	if err != nil {
		return nil, err
	}
	dir := " ASC"
	switch strings.ToLower(p.SortDirection) {
	case "", "asc":
	case "desc":
		dir = " DESC"
	default:
		return nil, invalid("sortDirection %q: want asc or desc", p.SortDirection)
	}
	sortable := func(c catalog.Column) bool {
		return c.Type != catalog.TypeGeometry && c.Type != catalog.TypeObject
	}
	var order, ordered []string
	if p.SortBy != "" {
		c, err := b.src.column(p.SortBy)
		if err != nil {
			return nil, err
		}
		if !sortable(c) {
			return nil, invalid("sortBy %q: cannot sort by a %s column", c.Name, c.Type)
		}
		order, ordered = append(order, ref(c)+dir+" NULLS LAST"), append(ordered, c.Name)
	}
	for _, oc := range cols {
		if sortable(oc.col) && !slices.Contains(ordered, oc.col.Name) {
			order, ordered = append(order, ref(oc.col)+" ASC NULLS LAST"), append(ordered, oc.col.Name)
		}
	}
	if b.src.RowIDs {
		order = append(order, "g.ctid")
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	count := b.stmt("SELECT count(*) AS total FROM " + b.src.from() + w)
	sel := make([]string, len(cols))
	keys := make([]string, len(cols))
	for i, oc := range cols {
		sel[i] = value(oc.col) + " AS " + pgx.Identifier{oc.as}.Sanitize()
		keys[i] = oc.as
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + b.src.from() + w
	if len(order) > 0 {
		q += " ORDER BY " + strings.Join(order, ", ")
	}
	q += " LIMIT " + b.bind(limit) + " OFFSET " + b.bind(offset)
	page := b.stmt(q)
	return &Plan{Statements: []Statement{count, page}, shape: func(res []Result) (any, error) {
		total, err := one(res[0])
		if err != nil {
			return nil, err
		}
		out := make([]Row, len(res[1].Rows))
		for i, vals := range res[1].Rows {
			out[i] = Row{Keys: keys, Vals: vals}
		}
		return body{Rows: out, Metadata: map[string]any{"total": total[0]}}, nil
	}}, nil
}

// aggregations: several aggregates over every row in scope, given as a
// list of {column, operation, alias} or as an expression string
// ("sum(pop) AS total, count(*) AS n") → {rows:[{alias: value, …}]}.
func (b *builder) aggregations(params json.RawMessage) (*Plan, error) {
	var p struct {
		Aggregations json.RawMessage `json:"aggregations"`
	}
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	raw := bytes.TrimSpace(p.Aggregations)
	var exprs, aliases []string
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, invalid("params.aggregations is required")
	case raw[0] == '"':
		var s string
		json.Unmarshal(raw, &s)
		items, err := b.parseExp(s)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			exprs = append(exprs, it.Agg.SQL)
			aliases = append(aliases, it.Agg.Alias)
		}
	default:
		var list []struct {
			Column    string `json:"column"`
			Operation string `json:"operation"`
			Alias     string `json:"alias"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, invalid("params.aggregations: want a list of {column, operation, alias} or an expression string")
		}
		for _, a := range list {
			if strings.EqualFold(a.Operation, opCustom) {
				return nil, invalid("aggregations: operation custom is not allowed in a list; use the expression string form")
			}
			sql, err := b.aggregate(a.Operation, a.Column, "")
			if err != nil {
				return nil, err
			}
			alias := a.Alias
			if alias == "" {
				alias = strings.ToLower(a.Operation)
				if a.Column != "" && a.Column != "*" {
					alias = a.Column + "_" + alias
				}
			}
			if slices.Contains(aliases, alias) {
				return nil, invalid("aggregations: alias %q is repeated", alias)
			}
			exprs = append(exprs, sql)
			aliases = append(aliases, alias)
		}
	}
	if len(exprs) == 0 {
		return nil, invalid("params.aggregations is empty")
	}
	w, err := b.where()
	if err != nil {
		return nil, err
	}
	sel := make([]string, len(exprs))
	for i := range exprs {
		sel[i] = exprs[i] + " AS " + pgx.Identifier{aliases[i]}.Sanitize()
	}
	st := b.stmt("SELECT " + strings.Join(sel, ", ") + " FROM " + b.src.from() + w)
	return &Plan{Statements: []Statement{st}, shape: func(res []Result) (any, error) {
		row, err := one(res[0])
		if err != nil {
			return nil, err
		}
		return body{Rows: []Row{{Keys: aliases, Vals: row}}}, nil
	}}, nil
}
