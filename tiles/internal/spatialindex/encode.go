package spatialindex

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
)

// ContentType is the Content-Type of the binary spatial-index tile.
const ContentType = "application/vnd.carto-spatial-tile"

// Column is one aggregated property of a tile's cells: Num holds one
// value per cell when Numeric (NaN for SQL NULL), else Str (nil pointers
// for NULL).
type Column struct {
	Name    string
	Numeric bool
	Num     []float64
	Str     []*string
}

// Tile is the content of a spatial-index tile: the cell ids and their
// properties, in the same order.
type Tile struct {
	Kind  Kind
	Cells []uint64
	Cols  []Column
}

// EncodeBinary writes t as CARTO's spatial-index tile (CARTO_API.md §2.3):
//
//	Tile  { uint32 scheme = 1; Cells cells = 2; }
//	Cells { Indices indices = 1; repeated Properties properties = 2;
//	        repeated NumericPropKV numericProps = 3; }
//	Indices { bytes value = 1; }   // packed fixed64, little-endian
//	Properties { repeated KeyValue entries = 1; }  // KeyValue {key=1; value=2}
//	NumericPropKV { string key = 1; NumericProp value = 2; }
//	NumericProp { bytes value = 1; }  // packed double, one per cell
//
// Non-numeric properties go, one Properties message per cell, only when
// the tile has any.
func EncodeBinary(t *Tile) []byte {
	var cells []byte
	idx := make([]byte, 8*len(t.Cells))
	for i, c := range t.Cells {
		binary.LittleEndian.PutUint64(idx[8*i:], c)
	}
	cells = appendBytesField(cells, 1, appendBytesField(nil, 1, idx))
	hasStr := false
	for _, col := range t.Cols {
		hasStr = hasStr || !col.Numeric
	}
	if hasStr {
		for i := range t.Cells {
			var props []byte
			for _, col := range t.Cols {
				if col.Numeric || col.Str[i] == nil {
					continue
				}
				var kv []byte
				kv = appendBytesField(kv, 1, []byte(col.Name))
				kv = appendBytesField(kv, 2, []byte(*col.Str[i]))
				props = appendBytesField(props, 1, kv)
			}
			cells = appendBytesField(cells, 2, props)
		}
	}
	for _, col := range t.Cols {
		if !col.Numeric {
			continue
		}
		vals := make([]byte, 8*len(col.Num))
		for i, v := range col.Num {
			binary.LittleEndian.PutUint64(vals[8*i:], math.Float64bits(v))
		}
		var kv []byte
		kv = appendBytesField(kv, 1, []byte(col.Name))
		kv = appendBytesField(kv, 2, appendBytesField(nil, 1, vals))
		cells = appendBytesField(cells, 3, kv)
	}
	var out []byte
	out = appendVarint(out, 1<<3|0) // scheme, varint
	out = appendVarint(out, t.Kind.Scheme())
	return appendBytesField(out, 2, cells)
}

// EncodeJSON writes t as the JSON tile deck.gl reads for formatTiles=json:
// [{"id": "<hex>", "properties": {…}}, …]; NULL and NaN become null.
func EncodeJSON(t *Tile) []byte {
	b := make([]byte, 0, 64*len(t.Cells)+2)
	b = append(b, '[')
	for i, c := range t.Cells {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = strconv.AppendUint(b, c, 16)
		b = append(b, `","properties":{`...)
		for j, col := range t.Cols {
			if j > 0 {
				b = append(b, ',')
			}
			name, _ := json.Marshal(col.Name)
			b = append(b, name...)
			b = append(b, ':')
			switch {
			case col.Numeric && !math.IsNaN(col.Num[i]) && !math.IsInf(col.Num[i], 0):
				b = strconv.AppendFloat(b, col.Num[i], 'g', -1, 64)
			case !col.Numeric && col.Str[i] != nil:
				s, _ := json.Marshal(*col.Str[i])
				b = append(b, s...)
			default:
				b = append(b, "null"...)
			}
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendBytesField appends a length-delimited field.
func appendBytesField(b []byte, num int, v []byte) []byte {
	b = appendVarint(b, uint64(num)<<3|2)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// DecodeBinary reads a tile written by EncodeBinary (numeric columns
// first, then string ones, in the order they appear).
func DecodeBinary(b []byte) (*Tile, error) {
	t := &Tile{}
	var strCols []string
	var strVals []map[string]string
	err := eachField(b, func(num int, v uint64, data []byte) error {
		switch num {
		case 1:
			t.Kind = Quadbin
			if v == 0 {
				t.Kind = H3
			}
		case 2:
			return eachField(data, func(num int, _ uint64, data []byte) error {
				switch num {
				case 1:
					return eachField(data, func(num int, _ uint64, raw []byte) error {
						if num != 1 || len(raw)%8 != 0 {
							return errors.New("spatialindex: bad indices")
						}
						for i := 0; i < len(raw); i += 8 {
							t.Cells = append(t.Cells, binary.LittleEndian.Uint64(raw[i:]))
						}
						return nil
					})
				case 2:
					m := map[string]string{}
					strVals = append(strVals, m)
					return eachField(data, func(_ int, _ uint64, kv []byte) error {
						var k, v string
						err := eachField(kv, func(num int, _ uint64, s []byte) error {
							if num == 1 {
								k = string(s)
							} else {
								v = string(s)
							}
							return nil
						})
						if _, seen := m[k]; !seen && !slices.Contains(strCols, k) {
							strCols = append(strCols, k)
						}
						m[k] = v
						return err
					})
				case 3:
					col := Column{Numeric: true}
					err := eachField(data, func(num int, _ uint64, s []byte) error {
						if num == 1 {
							col.Name = string(s)
							return nil
						}
						return eachField(s, func(_ int, _ uint64, raw []byte) error {
							for i := 0; i+8 <= len(raw); i += 8 {
								col.Num = append(col.Num, math.Float64frombits(binary.LittleEndian.Uint64(raw[i:])))
							}
							return nil
						})
					})
					t.Cols = append(t.Cols, col)
					return err
				}
				return nil
			})
		}
		return nil
	})
	for _, name := range strCols {
		col := Column{Name: name}
		for _, m := range strVals {
			if v, ok := m[name]; ok {
				col.Str = append(col.Str, &v)
			} else {
				col.Str = append(col.Str, nil)
			}
		}
		t.Cols = append(t.Cols, col)
	}
	return t, err
}

// eachField calls f for every varint or length-delimited field of b.
func eachField(b []byte, f func(num int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("spatialindex: bad protobuf")
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch key & 7 {
		case 0:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("spatialindex: bad protobuf")
			}
			b = b[n:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("spatialindex: bad protobuf")
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return errors.New("spatialindex: unexpected wire type")
		}
		if err := f(int(key>>3), v, data); err != nil {
			return err
		}
	}
	return nil
}
