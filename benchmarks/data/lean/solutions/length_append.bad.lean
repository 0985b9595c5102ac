/-- The length of a concatenation is the sum of the lengths. -/
theorem length_append' (a b : List Nat) : (a ++ b).length = a.length + b.length := by rfl
