package tile

import "unsafe"

// unsafeString views b as a string without copying. The result must not
// outlive b or be kept after b changes; Parse only reads it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
