(** Negating a boolean twice gives it back. *)
Theorem negb_involutive : forall b : bool, negb (negb b) = b.
Proof.
  intros b. destruct b; reflexivity.
Qed.
