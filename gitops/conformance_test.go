package gitops_test

import (
	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gitops"
)

// The controller drives the real adapter through its port.
var _ controller.Repo = (*gitops.Repo)(nil)
