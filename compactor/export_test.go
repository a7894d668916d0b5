package compactor

// SetCommitBatch sets the downsampler's commit batch for a test and returns
// a function restoring it.
func SetCommitBatch(n int) func() {
	old := commitBatch
	commitBatch = n
	return func() { commitBatch = old }
}
