package levee_test

import (
	"context"
	"errors"
	"testing"

	"github.com/levee-dev/levee/go"
)

func TestDoReleasesGuardsInnermostFirst(t *testing.T) {
	var log []string
	guard := func(name string, refuse bool) levee.Guard {
		return levee.GuardFunc(func(context.Context) (func(levee.Outcome), error) {
			if refuse {
				return nil, levee.ErrBulkheadFull
			}
			return func(o levee.Outcome) { log = append(log, name+":"+o.String()) }, nil
		})
	}
	boom := errors.New("boom")
	err := levee.Do(context.Background(), func(context.Context) error { return boom }, nil, guard("a", false), guard("b", false))
	if err != boom || len(log) != 2 || log[0] != "b:failure" || log[1] != "a:failure" {
		t.Fatalf("%v %v", err, log)
	}
	log = nil
	ran := false
	err = levee.Do(context.Background(), func(context.Context) error { ran = true; return nil }, nil, guard("a", false), guard("b", true))
	if !errors.Is(err, levee.ErrBulkheadFull) || ran || len(log) != 1 || log[0] != "a:rejected" {
		t.Fatalf("%v %v %v", err, ran, log)
	}
}
