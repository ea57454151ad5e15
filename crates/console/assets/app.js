// Placeholder: the console UI (replaced by the front-end).
