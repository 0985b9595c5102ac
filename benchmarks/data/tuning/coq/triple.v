(** Tripling by recursion equals adding a number to itself twice. *)
Fixpoint triple (n : nat) : nat :=
  match n with
  | O => O
  | S k => S (S (S (triple k)))
  end.

Theorem triple_is_sum : forall n : nat, triple n = n + n + n.
