"""Gas-leak alarm monitoring for catering businesses, on the same cases, audit and notifications."""
