package levee_test

import (
	"strings"
	"testing"
)

// TestRunnerIsStrict pins the runner's own rules: unknown policies and actions fail, every
// expected key must be checked, unused draws and running dry fail, config_error must match.
func TestRunnerIsStrict(t *testing.T) {
	cases := map[string]string{
		`{"policy": "teleport", "steps": []}`:                                                                "unknown policy `teleport`",
		`{"policy": "breaker", "steps": [{"check": {}, "expect": {"stat": "closed"}}]}`:                      `step 1 (check): expect keys ["stat"] are not understood`,
		`{"policy": "breaker", "steps": [{"random": [0.5]}]}`:                                                "1 random draw(s) were supplied but never used",
		`{"policy": "breaker", "config": {"minimum_calls": 1}, "steps": [{"call": {"outcome": "failure"}}]}`: "step 1 (call): needed a random draw",
		`{"policy": "breaker", "steps": [{"check": {}, "advance": "1s"}]}`:                                   "needs exactly one action key",
		`{"policy": "breaker", "steps": [{"teleport": {}}]}`:                                                 "unknown breaker action `teleport`",
		`{"policy": "breaker", "config": {"minimum_calls": 0}, "config_error": "nonsense"}`:                  "does not contain `nonsense`",
		`{"policy": "breaker", "config_error": "anything"}`:                                                  "config was accepted",
		`{"policy": "breaker", "steps": [{"check": {}, "expect": {"state": "open"}}]}`:                       `expected state = "open", got "closed"`,
	}
	for vector, want := range cases {
		_, err := runVector([]byte(vector))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\n  error %v\n  want it to contain %q", vector, err, want)
		}
	}
	if n, err := runVector([]byte(`{"policy": "breaker", "config": {"minimum_calls": 0}, "config_error": "minimum_calls"}`)); err != nil || n != 0 {
		t.Errorf("config_error vector: %v", err)
	}
}
