/-- List reversal, written out. -/
def reverse : List Nat → List Nat
  | [] => []
  | x :: t => reverse t ++ [x]

/-- Reversing twice gives back the list. -/
theorem reverse_involutive (l : List Nat) : reverse (reverse l) = l := by
  have distr : ∀ a b : List Nat, reverse (a ++ b) = reverse b ++ reverse a := by
    intro a b
    induction a with
    | nil => simp [reverse]
    | cons x t ih => simp [reverse, ih]
  induction l with
  | nil => rfl
  | cons x t ih => simp [reverse, distr, ih]
