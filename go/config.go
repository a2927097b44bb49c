package levee

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// UnmarshalConfig decodes a policy config written as JSON (the shape of the YAML config and of
// the conformance vectors' "config") into v, a pointer to a config struct. It reads config the
// way levee-core does:
//
//   - keys are the snake_case names in the fields' `json` tags;
//   - unknown and duplicate keys are errors ("unknown field `windw`, expected one of ...");
//   - time.Duration fields take duration strings ("250ms"); a bare number is rejected with the
//     fix ("duration `250` has no unit: write `250ms` ...");
//   - integers must be whole and in range; null is accepted by pointer fields and by fields
//     whose json tag has the option "nullable" (levee-core's Option keys), where it means
//     the key is absent;
//   - types implementing encoding.TextUnmarshaler take a string, and types implementing
//     json.Unmarshaler (such as StatusSet) receive their raw JSON.
//
// Keys left out keep the value v already has; values allocated for pointer fields start from
// their defaults when they implement ConfigDefaulter. Nothing is validated here; the policies'
// ParseConfig functions and constructors do that.
func UnmarshalConfig(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("levee.UnmarshalConfig needs a non-nil pointer")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	doc, err := readValue(dec)
	if err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing characters after the config")
	}
	return assign(rv.Elem(), doc, "")
}

// ConfigDefaulter is implemented by config types that fill in their defaults before a config
// is decoded over them. UnmarshalConfig calls it on every value it allocates for a pointer
// field (such as a bulkhead's optional limit), so keys left out take their defaults there too.
type ConfigDefaulter interface {
	SetConfigDefaults()
}

// object is a JSON object that remembers its key order, so errors name the first bad key as
// written.
type object struct {
	keys []string
	vals map[string]any
}

func readValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("empty config")
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &object{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				val, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				if _, dup := obj.vals[key]; dup {
					return nil, fmt.Errorf("duplicate field `%s`", key)
				}
				obj.keys = append(obj.keys, key)
				obj.vals[key] = val
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				val, err := readValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return tok, nil
	}
}

// toPlain turns the ordered representation back into encoding/json's (for json.Unmarshaler).
func toPlain(v any) any {
	switch t := v.(type) {
	case *object:
		m := make(map[string]any, len(t.keys))
		for _, k := range t.keys {
			m[k] = toPlain(t.vals[k])
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = toPlain(e)
		}
		return out
	default:
		return v
	}
}

// describe names a JSON value the way serde does in "invalid type" messages.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean `%t`", t)
	case json.Number:
		if _, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return fmt.Sprintf("integer `%s`", t)
		}
		if _, err := strconv.ParseUint(string(t), 10, 64); err == nil {
			return fmt.Sprintf("integer `%s`", t)
		}
		return fmt.Sprintf("floating point `%s`", t)
	case string:
		return fmt.Sprintf("string %q", t)
	case []any:
		return "sequence"
	case *object:
		return "map"
	}
	return fmt.Sprintf("%v", v)
}

func at(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	jsonUnmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// durationText turns a JSON value into the text the duration parser sees: a string as is, a
// number as written (so that `250` gets the "has no unit" message with the fix).
func durationText(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case json.Number:
		if _, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return string(t), true
		}
		if f, err := t.Float64(); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64), true
		}
		return string(t), true
	}
	return "", false
}

func assign(dst reflect.Value, src any, path string) error {
	t := dst.Type()
	if t.Kind() == reflect.Pointer {
		if src == nil {
			dst.Set(reflect.Zero(t))
			return nil
		}
		elem := reflect.New(t.Elem())
		if d, ok := elem.Interface().(ConfigDefaulter); ok {
			d.SetConfigDefaults()
		}
		if err := assign(elem.Elem(), src, path); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	}
	if t == durationType {
		text, ok := durationText(src)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a duration string such as \"250ms\" or \"5s\"", describe(src)))
		}
		d, err := ParseDuration(text)
		if err != nil {
			return at(path, err)
		}
		dst.SetInt(int64(d))
		return nil
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		raw, err := json.Marshal(toPlain(src))
		if err != nil {
			return at(path, err)
		}
		if err := dst.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			return at(path, err)
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, ok := src.(string)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a string", describe(src)))
		}
		if err := dst.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return at(path, err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Interface:
		if src == nil {
			dst.Set(reflect.Zero(t))
		} else {
			dst.Set(reflect.ValueOf(toPlain(src)))
		}
		return nil
	case reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a boolean", describe(src)))
		}
		dst.SetBool(b)
		return nil
	case reflect.String:
		s, ok := src.(string)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a string", describe(src)))
		}
		dst.SetString(s)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := src.(json.Number)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected an integer", describe(src)))
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			if _, uerr := strconv.ParseUint(string(n), 10, 64); uerr == nil {
				return at(path, fmt.Errorf("invalid value: integer `%s`, expected an integer that fits", n))
			}
			return at(path, fmt.Errorf("invalid type: %s, expected an integer", describe(src)))
		}
		if dst.OverflowInt(i) {
			return at(path, fmt.Errorf("invalid value: integer `%s`, expected an integer that fits", n))
		}
		dst.SetInt(i)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := src.(json.Number)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a non-negative integer", describe(src)))
		}
		u, err := strconv.ParseUint(string(n), 10, 64)
		if err != nil {
			if i, ierr := strconv.ParseInt(string(n), 10, 64); ierr == nil && i < 0 {
				return at(path, fmt.Errorf("invalid value: integer `%s`, expected a non-negative integer", n))
			}
			return at(path, fmt.Errorf("invalid type: %s, expected a non-negative integer", describe(src)))
		}
		if dst.OverflowUint(u) {
			return at(path, fmt.Errorf("invalid value: integer `%s`, expected an integer that fits", n))
		}
		dst.SetUint(u)
		return nil
	case reflect.Float32, reflect.Float64:
		n, ok := src.(json.Number)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a number", describe(src)))
		}
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) {
			return at(path, fmt.Errorf("invalid value: `%s`, expected a finite number", n))
		}
		dst.SetFloat(f)
		return nil
	case reflect.Slice:
		arr, ok := src.([]any)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a sequence", describe(src)))
		}
		out := reflect.MakeSlice(t, len(arr), len(arr))
		for i, e := range arr {
			if err := assign(out.Index(i), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(out)
		return nil
	case reflect.Map:
		obj, ok := src.(*object)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a map", describe(src)))
		}
		out := reflect.MakeMapWithSize(t, len(obj.keys))
		for _, k := range obj.keys {
			key := reflect.New(t.Key()).Elem()
			if err := assign(key, k, join(path, k)); err != nil {
				return err
			}
			val := reflect.New(t.Elem()).Elem()
			if err := assign(val, obj.vals[k], join(path, k)); err != nil {
				return err
			}
			out.SetMapIndex(key, val)
		}
		dst.Set(out)
		return nil
	case reflect.Struct:
		obj, ok := src.(*object)
		if !ok {
			return at(path, fmt.Errorf("invalid type: %s, expected a map", describe(src)))
		}
		fields := structFields(t)
		for _, k := range obj.keys {
			idx, ok := fields[k]
			if !ok {
				return at(path, unknownField(k, fields))
			}
			if obj.vals[k] == nil && nullable(t.Field(idx)) {
				continue // an optional key written as null is absent
			}
			if err := assign(dst.Field(idx), obj.vals[k], join(path, k)); err != nil {
				return err
			}
		}
		return nil
	}
	return at(path, fmt.Errorf("cannot decode into %s", t))
}

// nullable reports whether a field's json tag has the option "nullable": the key is optional
// in levee-core (an Option), so null means absent and the field keeps its value.
func nullable(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	for _, o := range strings.Split(opts, ",") {
		if o == "nullable" {
			return true
		}
	}
	return false
}

func structFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = i
	}
	return fields
}

// unknownField words the error as serde does: "unknown field `x`, expected one of `a`, `b`".
func unknownField(key string, fields map[string]int) error {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return fields[names[i]] < fields[names[j]] })
	switch len(names) {
	case 0:
		return fmt.Errorf("unknown field `%s`, there are no fields", key)
	case 1:
		return fmt.Errorf("unknown field `%s`, expected `%s`", key, names[0])
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "`" + n + "`"
	}
	return fmt.Errorf("unknown field `%s`, expected one of %s", key, strings.Join(quoted, ", "))
}
