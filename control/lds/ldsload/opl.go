package ldsload

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// oplObject is one node or way of osmium's OPL text format
// (https://osmcode.org/opl-file-format/) as written by
// `osmium add-locations-to-ways -f opl,add_metadata=false`: ways carry
// their node locations inline, so no node table is kept here.
type oplObject struct {
	Kind byte // 'n' or 'w'
	ID   int64
	Tags map[string]string
	// Lon, Lat: a node's location.
	Lon, Lat float64
	// Nodes: a way's node ids and locations, in order.
	Nodes []wayNode
}

type wayNode struct {
	ID       int64
	Lon, Lat float64
}

// readOPL calls fn for every node and way of r (relations are skipped).
func readOPL(r io.Reader, fn func(*oplObject) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Text()
		if b == "" || (b[0] != 'n' && b[0] != 'w') {
			continue
		}
		o, err := parseOPL(b)
		if err != nil {
			return fmt.Errorf("reading OPL line %d: %w", line, err)
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading OPL: %w", err)
	}
	return nil
}

func parseOPL(s string) (*oplObject, error) {
	o := &oplObject{Kind: s[0]}
	fields := strings.Split(s, " ")
	id, err := strconv.ParseInt(fields[0][1:], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("bad id %q", fields[0])
	}
	o.ID = id
	for _, f := range fields[1:] {
		if f == "" {
			continue
		}
		v := f[1:]
		switch f[0] {
		case 'T':
			o.Tags = parseTags(v)
		case 'x':
			if v != "" {
				o.Lon, _ = strconv.ParseFloat(v, 64)
			}
		case 'y':
			if v != "" {
				o.Lat, _ = strconv.ParseFloat(v, 64)
			}
		case 'N':
			if v == "" {
				continue
			}
			for _, ref := range strings.Split(v, ",") {
				// n123x1.5y2.5
				xi := strings.IndexByte(ref, 'x')
				yi := strings.IndexByte(ref, 'y')
				if len(ref) < 2 || ref[0] != 'n' || xi < 0 || yi < xi {
					continue // a node without location (outside the extract)
				}
				var wn wayNode
				wn.ID, err = strconv.ParseInt(ref[1:xi], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("bad node ref %q", ref)
				}
				if wn.Lon, err = strconv.ParseFloat(ref[xi+1:yi], 64); err != nil {
					continue
				}
				if wn.Lat, err = strconv.ParseFloat(ref[yi+1:], 64); err != nil {
					continue
				}
				o.Nodes = append(o.Nodes, wn)
			}
		}
	}
	return o, nil
}

// parseTags decodes "k=v,k=v" with OPL's %hex% escapes.
func parseTags(s string) map[string]string {
	if s == "" {
		return nil
	}
	tags := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		tags[unescapeOPL(k)] = unescapeOPL(v)
	}
	return tags
}

func unescapeOPL(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		if cp, err := strconv.ParseUint(s[i+1:i+1+j], 16, 32); err == nil {
			b.WriteRune(rune(cp))
		}
		i += j + 1
	}
	return b.String()
}
