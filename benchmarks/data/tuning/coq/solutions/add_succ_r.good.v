(** A successor on the right of an addition moves out. *)
Theorem add_succ_r : forall n m : nat, n + S m = S (n + m).
Proof.
  intros n m. induction n as [| k IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.
