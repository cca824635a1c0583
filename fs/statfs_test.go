package fs

import (
	"testing"

	"dfs/api"
)

func TestLogicalBytes(t *testing.T) {
	for _, c := range []struct {
		l    *api.Layout
		want uint64
	}{
		{nil, 600},
		{&api.Layout{Replicas: 3}, 200},
		{&api.Layout{Replicas: 1}, 600},
		{&api.Layout{Kind: api.Layout_EC, DataShards: 4, ParityShards: 2}, 400},
		{&api.Layout{Kind: api.Layout_EC, DataShards: 6, ParityShards: 3}, 400},
	} {
		if got := logicalBytes(600, c.l); got != c.want {
			t.Errorf("logicalBytes(600, %v) = %d, want %d", c.l, got, c.want)
		}
	}
}
