/-- Adding zero on the left changes nothing (addition recurses on its second argument). -/
theorem zero_add_left (n : Nat) : 0 + n = n :=
