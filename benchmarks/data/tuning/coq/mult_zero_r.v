(** Multiplying by zero on the right. *)
Theorem mult_zero_r : forall n : nat, n * 0 = 0.
