(** Addition of natural numbers commutes. *)
Theorem add_commutes : forall n m : nat, n + m = m + n.
