package levee_test

// The conformance runner: executes every JSON vector under ../conformance/vectors against the
// Go SDK, exactly as crates/levee-core/tests/conformance does for levee-core. A new vector
// file needs no code change; a failure names the file and the step. The format is described
// in conformance/README.md and conformance/policies/<policy>.md.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
)

// vectorStart is where every vector's clock starts, as in the Rust runner: a non-zero origin so
// "before the start" is representable. Nothing may depend on it.
const vectorStart = levee.Timestamp(1_000_000_000_000)

// env is the environment one vector runs in.
type env struct {
	clock  *levee.ManualClock
	random *levee.ScriptedRandom
}

func newEnv() *env {
	return &env{clock: levee.NewManualClock(vectorStart), random: levee.NewScriptedRandom()}
}

func (e *env) now() levee.Timestamp { return e.clock.Now() }

// elapsedText is the time since the vector started, as vectors write it ("at" fields).
func (e *env) elapsedText(at levee.Timestamp) string {
	return levee.FormatDuration(at.Since(vectorStart))
}

// subject is a policy under test: it receives each step the framework does not handle itself.
type subject interface {
	step(e *env, action string, args any, exp *expect) error
}

// policies maps a vector's "policy" to the constructor of its subject; each
// conformance_<policy>_test.go file registers itself in init. The constructor returns the
// configuration error, if any.
var policies = map[string]func(config []byte, e *env) (subject, error){}

// expect checks a step's "expect" object key by key. Every key present must be checked by the
// subject; finish fails on any key nobody looked at, so a typo in a vector never passes.
type expect struct {
	m       map[string]any
	checked map[string]bool
}

func newExpect(raw json.RawMessage) (*expect, error) {
	x := &expect{m: map[string]any{}, checked: map[string]bool{}}
	if raw == nil {
		return x, nil
	}
	v, err := decodeValue(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("`expect` must be an object, got %s", show(v))
	}
	x.m = m
	return x, nil
}

// get returns the expected value of key, if the vector gives one (and marks it checked).
func (x *expect) get(key string) (any, bool) {
	v, ok := x.m[key]
	if ok {
		x.checked[key] = true
	}
	return v, ok
}

// has reports whether the vector expects key (without marking it checked).
func (x *expect) has(key string) bool {
	_, ok := x.m[key]
	return ok
}

// eq compares key's expected value with actual when the vector gives one.
func (x *expect) eq(key string, actual any) error {
	expected, ok := x.get(key)
	if !ok {
		return nil
	}
	a, err := normalize(actual)
	if err != nil {
		return err
	}
	if !jsonEqual(expected, a) {
		return fmt.Errorf("expected %s = %s, got %s", key, show(expected), show(a))
	}
	return nil
}

// duration compares a duration expectation (a duration string, or null for "none") with
// actual (nil for none).
func (x *expect) duration(key string, actual *time.Duration) error {
	expected, ok := x.get(key)
	if !ok {
		return nil
	}
	var want *time.Duration
	if expected != nil {
		d, err := durationValue(expected)
		if err != nil {
			return err
		}
		want = &d
	}
	if (want == nil) != (actual == nil) || (want != nil && *want != *actual) {
		shown := "None"
		if actual != nil {
			shown = fmt.Sprintf("Some(%q)", levee.FormatDuration(*actual))
		}
		return fmt.Errorf("expected %s = %s, got %s", key, show(expected), shown)
	}
	return nil
}

// finish fails if any expected key was not checked.
func (x *expect) finish() error {
	var unchecked []string
	for k := range x.m {
		if !x.checked[k] {
			unchecked = append(unchecked, k)
		}
	}
	if len(unchecked) == 0 {
		return nil
	}
	sort.Strings(unchecked)
	return fmt.Errorf("expect keys %q are not understood by this step", unchecked)
}

// decodeValue decodes JSON keeping numbers as written.
func decodeValue(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// normalize turns a Go value into the decoded-JSON form vectors are compared in.
func normalize(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeValue(raw)
}

// jsonEqual compares decoded JSON values; numbers compare by value (integers exactly).
func jsonEqual(a, b any) bool {
	switch av := a.(type) {
	case json.Number:
		bv, ok := b.(json.Number)
		if !ok {
			return false
		}
		ai, aok := new(big.Int).SetString(string(av), 10)
		bi, bok := new(big.Int).SetString(string(bv), 10)
		if aok && bok {
			return ai.Cmp(bi) == 0
		}
		af, aerr := av.Float64()
		bf, berr := bv.Float64()
		return aerr == nil && berr == nil && af == bf
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !jsonEqual(av[i], bv[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok || !jsonEqual(x, y) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// show writes a decoded value as compact JSON.
func show(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(raw)
}

// durationValue parses a duration string value.
func durationValue(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("expected a duration string, got %s", show(v))
	}
	return levee.ParseDuration(s)
}

// field reads a field of a step's arguments.
func field(args any, key string) (any, bool) {
	m, ok := args.(map[string]any)
	if !ok {
		return nil, false
	}
	v, ok := m[key]
	return v, ok
}

// strField reads a required string field.
func strField(args any, key string) (string, error) {
	v, _ := field(args, key)
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("step needs a string `%s`", key)
	}
	return s, nil
}

// optStrField reads an optional string field.
func optStrField(args any, key string) (string, bool, error) {
	v, ok := field(args, key)
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, fmt.Errorf("`%s` must be a string, got %s", key, show(v))
	}
	return s, true, nil
}

// durationField reads an optional duration field.
func durationField(args any, key string) (*time.Duration, error) {
	v, ok := field(args, key)
	if !ok {
		return nil, nil
	}
	d, err := durationValue(v)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// numberField reads an optional number field as float64.
func numberField(args any, key string) (float64, bool, error) {
	v, ok := field(args, key)
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false, fmt.Errorf("`%s` must be a number, got %s", key, show(v))
	}
	f, err := n.Float64()
	return f, true, err
}

// uintField reads an optional non-negative integer field.
func uintField(args any, key string) (uint64, bool, error) {
	v, ok := field(args, key)
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(json.Number)
	var u big.Int
	if !ok {
		return 0, false, fmt.Errorf("`%s` must be a non-negative integer, got %s", key, show(v))
	}
	if _, ok := u.SetString(string(n), 10); !ok || u.Sign() < 0 || !u.IsUint64() {
		return 0, false, fmt.Errorf("`%s` must be a non-negative integer, got %s", key, n)
	}
	return u.Uint64(), true, nil
}

// boolField reads an optional boolean field.
func boolField(args any, key string) (bool, bool, error) {
	v, ok := field(args, key)
	if !ok {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, false, fmt.Errorf("`%s` must be a boolean, got %s", key, show(v))
	}
	return b, true, nil
}

// configError prefixes a config error the way the Rust runner does.
func configError(err error) error { return fmt.Errorf("config: %w", err) }

type vectorFile struct {
	Policy      *string           `json:"policy"`
	Config      json.RawMessage   `json:"config"`
	ConfigError json.RawMessage   `json:"config_error"`
	Steps       []json.RawMessage `json:"steps"`
}

// runVector runs one vector and returns its number of steps; the error reads
// "step N (action): what went wrong".
func runVector(text []byte) (int, error) {
	var v vectorFile
	if err := json.Unmarshal(text, &v); err != nil {
		return 0, fmt.Errorf("invalid JSON: %v", err)
	}
	if v.Policy == nil {
		return 0, errors.New("vector has no string `policy`")
	}
	config := []byte(v.Config)
	if len(config) == 0 { // absent; an explicit null is passed on, as the Rust runner does
		config = []byte("{}")
	}
	e := newEnv()
	var (
		subj     subject
		buildErr error
	)
	if build, ok := policies[*v.Policy]; ok {
		subj, buildErr = build(config, e)
	} else {
		buildErr = fmt.Errorf("unknown policy `%s`: the Go runner has no subject for it (add conformance_%s_test.go)", *v.Policy, *v.Policy)
	}
	if v.ConfigError != nil {
		var needle string
		if err := json.Unmarshal(v.ConfigError, &needle); err != nil {
			return 0, errors.New("`config_error` must be a string")
		}
		switch {
		case buildErr == nil:
			return 0, fmt.Errorf("config was accepted, expected an error containing `%s`", needle)
		case strings.Contains(buildErr.Error(), needle):
			return 0, nil
		default:
			return 0, fmt.Errorf("config error `%s` does not contain `%s`", buildErr, needle)
		}
	}
	if buildErr != nil {
		return 0, buildErr
	}
	if v.Steps == nil {
		return 0, errors.New("vector has no `steps` array")
	}
	for i, raw := range v.Steps {
		n := i + 1
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return 0, fmt.Errorf("step %d: not an object", n)
		}
		var actions []string
		for k := range obj {
			if k != "expect" && k != "comment" {
				actions = append(actions, k)
			}
		}
		sort.Strings(actions)
		if len(actions) != 1 {
			return 0, fmt.Errorf("step %d: needs exactly one action key, found %q", n, actions)
		}
		action := actions[0]
		args, err := decodeValue(obj[action])
		if err != nil {
			return 0, fmt.Errorf("step %d: %v", n, err)
		}
		exp, err := newExpect(obj["expect"])
		if err != nil {
			return 0, fmt.Errorf("step %d: %v", n, err)
		}
		err = runStep(e, subj, action, args, exp)
		if err == nil {
			err = exp.finish()
		}
		if err == nil && e.random.TakeRanDry() {
			err = errors.New("needed a random draw the vector did not supply (add a `random` step)")
		}
		if err != nil {
			return 0, fmt.Errorf("step %d (%s): %v", n, action, err)
		}
	}
	if r := e.random.Remaining(); r > 0 {
		return 0, fmt.Errorf("%d random draw(s) were supplied but never used", r)
	}
	return len(v.Steps), nil
}

// runStep runs the common actions itself and hands every other one to the subject.
func runStep(e *env, subj subject, action string, args any, exp *expect) error {
	switch action {
	case "advance":
		d, err := durationValue(args)
		if err != nil {
			return err
		}
		e.clock.Advance(d)
		return nil
	case "random":
		arr, ok := args.([]any)
		if !ok {
			return errors.New("`random` must be an array of numbers in [0, 1)")
		}
		draws := make([]float64, 0, len(arr))
		for _, a := range arr {
			n, ok := a.(json.Number)
			if !ok {
				return errors.New("`random` must be an array of numbers in [0, 1)")
			}
			f, err := n.Float64()
			if err != nil {
				return errors.New("`random` must be an array of numbers in [0, 1)")
			}
			draws = append(draws, f)
		}
		e.random.Push(draws...)
		return nil
	}
	return subj.step(e, action, args, exp)
}

func vectorsDir() string { return filepath.Join("..", "conformance", "vectors") }

func collectVectors(t *testing.T) []string {
	var files []string
	err := filepath.WalkDir(vectorsDir(), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cannot read %s: %v", vectorsDir(), err)
	}
	sort.Strings(files)
	return files
}

// TestConformance runs every vector and prints "conformance: N of M vectors passed".
func TestConformance(t *testing.T) {
	files := collectVectors(t)
	var failures []string
	steps := 0
	for _, file := range files {
		name, _ := filepath.Rel(vectorsDir(), file)
		name = "conformance/vectors/" + filepath.ToSlash(name)
		text, err := os.ReadFile(file)
		var n int
		if err == nil {
			n, err = runVector(text)
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		steps += n
	}
	passed := len(files) - len(failures)
	fmt.Printf("conformance: %d of %d vectors passed (%d steps)\n", passed, len(files), steps)
	if len(failures) > 0 {
		t.Errorf("%d vector(s) failed:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	if len(files) == 0 {
		t.Errorf("no vectors found under %s", vectorsDir())
	}
}
