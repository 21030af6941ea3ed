package faults

// envSoak sets the soak's duration and turns it on (scripts/soak).
const envSoak = "CHAMBER_SOAK_DURATION"
