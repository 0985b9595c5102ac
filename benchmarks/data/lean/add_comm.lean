/-- Addition of natural numbers commutes. -/
theorem add_commutes (a b : Nat) : a + b = b + a :=
