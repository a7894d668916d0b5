package blockmeta

import "context"

type maxResKey struct{}

// WithMaxResolution returns ctx asking queriers to read data of at most
// resolution res (ms) where it exists. The query engine sets it from the
// query's step or an explicit max_source_resolution.
func WithMaxResolution(ctx context.Context, res int64) context.Context {
	return context.WithValue(ctx, maxResKey{}, res)
}

// MaxResolution returns the resolution ctx asks for; ResRaw when unset.
func MaxResolution(ctx context.Context) int64 {
	r, _ := ctx.Value(maxResKey{}).(int64)
	return r
}
