package rollout

// EventNotified records the outcome of one notification delivery to one receiver: Reason
// is "sent", "failed" (after every attempt) or "dropped" (the receiver's queue was full),
// Actor the receiver's name, Message what was sent and, for a failure, why. Its run, step,
// weights and phase are those of the event it notified.
const EventNotified EventKind = "notified"
