// The status page script: filled in below.
