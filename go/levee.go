package levee

// Ptr returns a pointer to v: sugar for the few config fields where zero is a meaningful
// value different from the default, such as breaker.OpenConfig.Jitter (levee.Ptr(0.0) turns
// jitter off) or retry.BudgetConfig.Ratio.
func Ptr[T any](v T) *T { return &v }
