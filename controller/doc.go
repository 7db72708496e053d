// Package controller runs rollouts: a pure decision function (Decide) that turns a rollout's
// state, one input and the time into the next state and the actions to perform, and the loop
// (Controller.Run) that feeds it ticks, verdicts, operator actions and what Git says, and
// performs its actions through the small interfaces declared here (Repo, Router, Gates,
// Store, Clock). It never imports an adapter package; cmd wires the real ones in.
package controller
